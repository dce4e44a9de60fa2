"""The rehearsal (infra/rehearse.py): the packaged CloudFormation template run on a laptop.

Modules: `template` (intrinsics, physical names, ARNs), `dataplane` (the table, queues and SSM
parameter on moto), `deployment` (functions, routes, mappings, the deployment file),
`proxy` (the recording proxy), `iam` (the evaluation of what was recorded), `emf` (metrics against
alarms), `wsclient` (a small WebSocket client), `steps` (the end-to-end run).
"""
