"""Reference documentation generated from the code: tool entries, the tool API and every setting (`api.py`), and
`llms.txt` / `llms-full.txt` built from them (`llms.py`). Below the app, so a running server can serve them."""
