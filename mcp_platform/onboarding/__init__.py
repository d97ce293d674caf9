"""Onboarding: what people and coding assistants need in their first five minutes.

`connect` prints or merges each client's configuration, `doctor` probes a deployment the way clients do, and
`llms` generates `llms.txt` / `llms-full.txt` from the live registry. The stdio transport lives with the others in
`mcp_platform.transport.stdio`.
"""
