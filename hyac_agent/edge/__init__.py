"""The edge: what the gateway decides before any worker is touched.

Who may call a function (IP allow and deny lists, access modes, rate limits, CORS), and
which function a request's ``Host`` names (custom domains). ``install_edge`` wires it
into the agent's application; the gateway asks ``admit`` about every request.
"""

from hyac_agent.edge.install import install_edge

__all__ = ["install_edge"]
