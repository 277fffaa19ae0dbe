#!/usr/bin/env bash
# The checkout stand-in's work (see action.yml): the real action's git commands, offline.
set -euo pipefail
if [ -z "${ORIGIN_URL:-}" ]; then
  echo "checkout stand-in: the event file names no repository.clone_url" >&2
  exit 1
fi
cd "$GITHUB_WORKSPACE"
git init -q
git remote add origin "$ORIGIN_URL"
case "$ORIGIN_URL" in
  http://* | https://*)
    # The real action's header, for the origin's host only.
    header="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$TOKEN" | base64 -w0)"
    host=$(printf '%s' "$ORIGIN_URL" | sed -E 's#^(https?://[^/]+)/.*#\1#')
    git config --local "http.$host/.extraheader" "$header";;
esac
case "$GITHUB_REF" in
  refs/heads/*) tracking="refs/remotes/origin/${GITHUB_REF#refs/heads/}";;
  refs/pull/*) tracking="refs/remotes/pull/${GITHUB_REF#refs/pull/}";;
  refs/tags/*) tracking="$GITHUB_REF";;
  *) echo "checkout stand-in: GITHUB_REF=$GITHUB_REF is not a branch, tag or pull request" >&2; exit 1;;
esac
if [ "$FETCH_DEPTH" = 0 ]; then
  refspecs=("+refs/heads/*:refs/remotes/origin/*" "+refs/tags/*:refs/tags/*")
  [[ "$GITHUB_REF" == refs/pull/* ]] && refspecs+=("+$GITHUB_REF:$tracking")
  git fetch -q --prune --no-recurse-submodules origin "${refspecs[@]}"
else
  git fetch -q --no-tags --prune --no-recurse-submodules --depth="$FETCH_DEPTH" origin "+$GITHUB_REF:$tracking"
fi
fetched=$(git rev-parse "$tracking")
if [ "$fetched" != "$GITHUB_SHA" ]; then
  echo "checkout stand-in: $GITHUB_REF on origin is $fetched, the event's commit GITHUB_SHA is $GITHUB_SHA" >&2
  exit 1
fi
case "$GITHUB_REF" in
  refs/heads/*) git checkout -q --force -B "${GITHUB_REF#refs/heads/}" "$tracking";;
  *) git checkout -q --force "$tracking";;
esac
if [ "$PERSIST_CREDENTIALS" != true ]; then
  git config --local --unset-all "http.${host:-none}/.extraheader" || true
fi
echo "checked out $GITHUB_REF at $fetched from $ORIGIN_URL ($(git rev-list --count HEAD) commits of history)"
