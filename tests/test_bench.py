"""benchmarks/bench.py's table (each row's median seconds over the median notebook epoch) and README's copy."""

from pages import README, read

from benchmarks import bench


def run(seconds):
    """One repetition's {row: seconds}, every row of the table taking `seconds`."""
    return dict.fromkeys({**bench.ROWS, **bench.PARTS}, seconds)


def table_cells(table):
    """{row label: [cells after the label]} of the Markdown table."""
    rows = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows[1:]}


def test_each_row_is_its_median_and_that_median_over_the_median_epoch():
    runs = {"aaa": [run(10.0), run(30.0), run(20.0)], "bbb": [run(5.0), run(4.0), run(100.0)]}
    epochs = [8.0, 100.0, 2.0, 10.0, 1.0]  # median 8
    cells = table_cells(bench.markdown_table(["aaa", "bbb"], runs, epochs, 1.0, 3))

    assert set(cells) == set(bench.ROWS.values()) | set(bench.PARTS.values())
    for row_cells in cells.values():
        assert row_cells == ["20.0", "2.50", "5.0", "0.62"]


def test_readmes_speed_table_is_the_committed_benchmark():
    """README's rows, each a row of reports/benchmark.md by its label, give that report's last column."""
    report = table_cells(read("reports/benchmark.md"))
    readme = {label: cells for label, cells in table_cells(read(README)).items() if label in report}
    assert set(bench.ROWS.values()) <= set(readme), "README leaves out a row of the benchmark"
    for label, cells in readme.items():
        assert cells == report[label][-1:], f"README shows {cells} for {label}; reports/benchmark.md {report[label]}"
