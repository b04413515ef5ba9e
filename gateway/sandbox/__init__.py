"""The sandbox: Meta's side of Messenger, simulated, so the gateway can be tried with no Meta app.

`graph.py` is the Graph API simulator (the sandbox's, the tests' and the benchmarks' one),
`payloads.py` builds and signs webhook bodies as Meta does, `server.py` runs the simulator and a
"customer" page in the gateway's own process (`messenger-gateway --sandbox`), and `simulate.py`
posts signed webhooks to any running gateway (`messenger-gateway simulate ...`).
"""
