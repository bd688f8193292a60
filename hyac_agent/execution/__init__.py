"""The execution path: what runs a function version once the API has decided to.

- ``pool``: generic pre-started sandboxes per runtime and one live worker per version;
- ``worker``: one sandboxed worker process, its requests in flight, drain and stop;
- ``channel``: the framed socket between the agent and a worker;
- ``hostcalls``: what a function's ``context`` asks the agent to do (kv, storage, mail,
  invoke, ...), answered on the worker's channel.

Sandboxes themselves (how a worker process is isolated) live in ``hyac_agent.sandbox``.
"""
