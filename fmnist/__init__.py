"""The lesson's library: softmax regression on Fashion-MNIST, from scratch and with torch.nn.

softmax: the from-scratch math; linear: the torch.nn model and its
training loop; data: the Fashion-MNIST files and arrays; models: the
trained models as safetensors files; params: params.yaml, checked;
figures: what the models learned, drawn; files: whole-or-nothing writes;
errors: one line for a problem the user can fix.
"""
