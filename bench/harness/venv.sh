# Sourced by bench/run and bench/chaos/run: bench/.venv with the pinned Python packages (the
# Python SDK peer and driver, aiohttp, standardwebhooks), reinstalled when requirements.txt
# changes. Expects $bench (the bench folder) and a `say` function.
venv="$bench/.venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$bench/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the bench's Python packages into bench/.venv (requirements.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$bench/requirements.txt"
  echo "$want" > "$stamp"
fi
