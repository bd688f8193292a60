"""``hyac ip`` and ``hyac access``: who may call a tenant's functions through the
gateway (IP allow and deny lists, access modes, function keys, rate limits, CORS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hyac_cli import options

ip_app = typer.Typer(help="IP allow and deny lists (CIDRs, IPv4 and IPv6) for the tenant, a "
                          "function or a domain; deny wins.", no_args_is_help=True)
access_app = typer.Typer(help="Who may call a function through the gateway: public, token or "
                              "signed; function keys, rate limits, CORS.", no_args_is_help=True)
key_app = typer.Typer(help="Function keys: callers send them as X-Hyac-Key (token mode).",
                      no_args_is_help=True)
access_app.add_typer(key_app, name="key")

Function = Annotated[str, typer.Argument(help="The function's name.", show_default=False)]
OnFunction = Annotated[str | None, typer.Option("--function", "-f", help="The rule is this function's.")]
OnDomain = Annotated[str | None, typer.Option("--domain", help="The rule is this domain's.")]
Note = Annotated[str, typer.Option("--note", help="Why the rule is there.")]
Cidr = Annotated[str, typer.Argument(help="A network or address: 10.0.0.0/8, 2001:db8::/32, 192.0.2.7.",
                                     show_default=False)]


def _add_rule(action: str, cidr: str, function: str | None, domain: str | None, note: str,
              tenant: str | None, as_json: bool) -> None:
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    body = {"action": action, "cidr": cidr, "function": function, "domain": domain, "note": note}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        made = agent.post("/v1/edge/ip-rules", json=body)
    term = Terminal()
    if as_json:
        term.print_json(made)
    else:
        term.say(f"{made['id']}  {action} {made['cidr']}  ({_where(made)})")


def _where(rule: dict[str, Any]) -> str:
    if rule.get("domain"):
        return f"domain {rule['domain']}"
    if rule.get("function"):
        return f"function {rule['function']}"
    return f"tenant {rule['tenant']}"


@ip_app.command("allow")
def allow(cidr: Cidr, function: OnFunction = None, domain: OnDomain = None, note: Note = "",
          tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Allow a network: once a list has an allow rule, only its networks get through."""
    _add_rule("allow", cidr, function, domain, note, tenant, as_json)


@ip_app.command("deny")
def deny(cidr: Cidr, function: OnFunction = None, domain: OnDomain = None, note: Note = "",
         tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Deny a network (refused with 403 naming the rule, whatever the allow rules say)."""
    _add_rule("deny", cidr, function, domain, note, tenant, as_json)


@ip_app.command("ls")
def ip_ls(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the tenant's IP rules."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        rules = agent.get("/v1/edge/ip-rules") or []
    term = Terminal()
    if as_json:
        term.print_json(rules)
        return
    term.table(("id", "action", "cidr", "applies to", "note"),
               [(r["id"], r["action"], r["cidr"], _where(r), r.get("note") or "") for r in rules],
               empty="No IP rules: every address may call.")


@ip_app.command("rm")
def ip_rm(rule_id: Annotated[str, typer.Argument(help="The rule's id (ipr_…).", show_default=False)],
          tenant: options.Tenant = None) -> None:
    """Remove an IP rule."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"/v1/edge/ip-rules/{client.segment(rule_id, 'rule id')}")
    Terminal().say(f"{rule_id}  removed")


@ip_app.command("proxies")
def proxies(
    cidrs: Annotated[list[str] | None, typer.Argument(
        help="Networks of the proxies in front of the agent (none: show them).", show_default=False)] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Trust no proxy.")] = False,
    as_json: options.Json = False,
) -> None:
    """Trusted proxies (platform owner): only their X-Forwarded-For and Forwarded headers
    are believed."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        if cidrs or clear:
            settings = agent.request("PATCH", "/v1/edge/settings",
                                       json={"trusted_proxies": cidrs or []})
        else:
            settings = agent.get("/v1/edge/settings")
    term = Terminal()
    if as_json:
        term.print_json(settings["trusted_proxies"])
    elif settings["trusted_proxies"]:
        term.say("\n".join(settings["trusted_proxies"]))
    else:
        term.note("No trusted proxies: forwarded headers are ignored.")


def _show_access(answer: dict[str, Any], as_json: bool) -> None:
    from hyac_cli.terminal import Terminal

    term = Terminal()
    if as_json:
        term.print_json(answer)
        return
    rate = answer.get("rate_limit")
    cors = answer.get("cors")
    term.table(("setting", "value"), [
        ("mode", answer["mode"]),
        ("rate limit", f"{rate['requests']} per {rate['per_seconds']:g} s per client address"
         if rate else "none"),
        ("cors", ", ".join(cors["origins"]) if cors else "off"),
        ("replay window", f"{answer['replay_window']:g} s" if answer.get("replay_window") else "300 s"),
    ])
    if answer.get("signing_secret"):
        term.write(answer["signing_secret"] + "\n")
        term.note("The signing secret above is shown this once: store it now.")


def _patch_access(function: str, tenant: str | None, body: dict[str, Any], as_json: bool) -> None:
    from hyac_cli import client

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.request("PATCH", f"/v1/edge/access/{client.segment(function, 'function')}",
                               json=body)
    _show_access(answer, as_json)


@access_app.command("show")
def show(function: Function, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Show a function's access mode, rate limit and CORS."""
    from hyac_cli import client

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.get(f"/v1/edge/access/{client.segment(function, 'function')}")
    _show_access(answer, as_json)


def _rate(text: str) -> dict[str, Any]:
    """``100/60s``, ``10/s``, ``1000/h`` as requests per seconds."""
    from hyac_common.durations import parse_duration
    from hyac_common.errors import InvalidInput

    requests, sep, period = text.partition("/")
    if not sep or not requests.isdigit():
        raise InvalidInput(f"--rate: expected REQUESTS/PERIOD like 100/60s or 10/s, got {text!r}")
    period = period if period[:1].isdigit() else "1" + period
    return {"requests": int(requests), "per_seconds": parse_duration(period, "--rate")}


@access_app.command("set")
def set_(
    function: Function,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="public (anyone), token (API token or function key), signed (HMAC).")] = None,
    rate: Annotated[str | None, typer.Option(
        "--rate", help="Per client address, e.g. 100/60s, 10/s; 'off' removes it.")] = None,
    replay_window: Annotated[float | None, typer.Option(
        "--replay-window", help="Seconds a signed request's timestamp may be off (default 300).")] = None,
    rotate_secret: Annotated[bool, typer.Option(
        "--rotate-secret", help="Make a new signing secret (shown once).")] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Change a function's access mode or rate limit (signed mode makes a signing
    secret, shown once)."""
    body: dict[str, Any] = {}
    if mode is not None:
        body["mode"] = mode
    if rate is not None:
        body["rate_limit"] = None if rate == "off" else _rate(rate)
    if replay_window is not None:
        body["replay_window"] = replay_window
    if rotate_secret:
        body["rotate_signing_secret"] = True
    _patch_access(function, tenant, body, as_json)


@access_app.command("cors")
def cors(
    function: Function,
    origin: Annotated[list[str] | None, typer.Option(
        "--origin", help="An allowed origin (https://app.example.com) or '*'; repeat for more.")] = None,
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="An allowed method (default GET and POST); repeat for more.")] = None,
    header: Annotated[list[str] | None, typer.Option(
        "--header", help="A request header browsers may send; repeat for more.")] = None,
    max_age: Annotated[int, typer.Option("--max-age", help="Seconds a preflight is cached.")] = 600,
    credentials: Annotated[bool, typer.Option(
        "--credentials", help="Allow cookies and credentials (needs named origins).")] = False,
    off: Annotated[bool, typer.Option("--off", help="Stop answering for CORS.")] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Set a function's CORS policy: the gateway answers preflights itself."""
    from hyac_common.errors import InvalidInput

    if off:
        body: dict[str, Any] = {"cors": None}
    elif not origin:
        raise InvalidInput("name at least one --origin (or --off)")
    else:
        body = {"cors": {"origins": origin, "methods": method or ["GET", "POST"],
                         "headers": header or [], "max_age": max_age, "credentials": credentials}}
    _patch_access(function, tenant, body, as_json)


@key_app.command("add")
def key_add(function: Function, name: Annotated[str, typer.Option("--name", help="A label.")] = "",
            tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Make a function key and print it (this is the only time it is shown)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        made = agent.post(f"/v1/edge/access/{client.segment(function, 'function')}/keys",
                          json={"name": name})
    term = Terminal()
    if as_json:
        term.print_json(made)
        return
    term.write(made["key"] + "\n")
    term.note(f"{made['id']} for {function}. Store it now: it cannot be shown again.")


@key_app.command("ls")
def key_ls(function: Function, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List a function's keys (never the keys themselves)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        keys = agent.get(f"/v1/edge/access/{client.segment(function, 'function')}/keys") or []
    term = Terminal()
    if as_json:
        term.print_json(keys)
    else:
        term.table(("id", "name"), [(k["id"], k["name"]) for k in keys], empty="No keys.")


@key_app.command("rm")
def key_rm(function: Function,
           key_id: Annotated[str, typer.Argument(help="The key's id (fk_…).", show_default=False)],
           tenant: options.Tenant = None) -> None:
    """Remove a function key: it stops working at once."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"/v1/edge/access/{client.segment(function, 'function')}/keys/"
                     f"{client.segment(key_id, 'key id')}")
    Terminal().say(f"{key_id}  removed")


domain_app = typer.Typer(help="Custom domains: the gateway routes a request by its Host to "
                              "one function or to the tenant's functions.", no_args_is_help=True)
Host = Annotated[str, typer.Argument(help="The domain name, e.g. api.example.com.",
                                     show_default=False)]


def _print_domain(domain: dict[str, Any], as_json: bool) -> None:
    from hyac_cli.terminal import Terminal

    term = Terminal()
    if as_json:
        term.print_json(domain)
    else:
        _show_domain(term, domain)


def _show_domain(term: Any, domain: dict[str, Any]) -> None:
    where = "/{function}/…" if domain["tenant_root"] else (
        f"{domain['function']}" + (f" under {domain['path_prefix']}"
                                   if domain["path_prefix"] != "/" else ""))
    term.say(f"{domain['host']}  {domain['status']}  → {where}"
             + ("  (certificate by ACME)" if domain.get("acme") else ""))
    if domain.get("acme_error"):
        term.warn(f"ACME: {domain['acme_error']}")
    if domain["status"] == "pending":
        term.note("Prove the name is yours, then run `hyac domain verify "
                  f"{domain['host']}`:\n  {domain['check']['http']}\n  or {domain['check']['dns']}")


@domain_app.command("add")
def domain_add(
    host: Host,
    function: Annotated[str | None, typer.Option("--function", "-f", help="The function it runs.")] = None,
    tenant_root: Annotated[bool, typer.Option(
        "--tenant-root", help="Every function of the tenant, as https://HOST/{function}/….")] = False,
    path_prefix: Annotated[str, typer.Option(
        "--path-prefix", help="The function answers under this path only.")] = "/",
    acme: Annotated[bool, typer.Option(
        "--acme", help="Get its certificate from the platform's ACME server (and renew it).")] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Bind a domain to a function (or the whole tenant with --tenant-root)."""
    from hyac_cli import client
    from hyac_common.errors import InvalidInput

    if tenant_root == (function is not None):
        raise InvalidInput("give either --function NAME or --tenant-root")
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        made = agent.post("/v1/domains", json={"host": host, "function": function,
                                               "tenant_root": tenant_root,
                                               "path_prefix": path_prefix, "acme": acme})
    _print_domain(made, as_json)


@domain_app.command("verify")
def domain_verify(host: Host, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Run the ownership check of a pending domain (HTTP token or DNS TXT record)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent, \
            term.status(f"checking {host} …"):
        done = agent.post(f"/v1/domains/{client.segment(host, 'domain')}/verify")
    _print_domain(done, as_json)


@domain_app.command("ls")
def domain_ls(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the tenant's domains."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        domains = agent.get("/v1/domains") or []
    term = Terminal()
    if as_json:
        term.print_json(domains)
        return
    term.table(("host", "status", "function", "path prefix"),
               [(d["host"], d["status"], "(tenant root)" if d["tenant_root"] else d["function"],
                 d["path_prefix"]) for d in domains], empty="No domains.")


@domain_app.command("rm")
def domain_rm(host: Host, tenant: options.Tenant = None) -> None:
    """Unbind a domain."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"/v1/domains/{client.segment(host, 'domain')}")
    Terminal().say(f"{host}  removed")


@domain_app.command("cert")
def domain_cert(
    host: Host,
    cert: Annotated[Path | None, typer.Option(
        "--cert", help="The certificate, then its chain (PEM file).")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Its private key (PEM file).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the domain's certificate.")] = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Upload a domain's TLS certificate (checked: key, names, chain, expiry), show it
    (no options), or remove it."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    path = f"/v1/domains/{client.segment(host, 'domain')}/certificate"
    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        if remove:
            agent.delete(path)
            term.say(f"{host}  certificate removed")
            return
        if (cert is None) != (key is None):
            raise InvalidInput("give both --cert and --key")
        if cert is not None and key is not None:
            shown = agent.put(path, json={"cert_pem": cert.read_text(), "key_pem": key.read_text()})
        else:
            shown = agent.get(path)
    if as_json:
        term.print_json(shown)
        return
    import datetime as dt

    ends = dt.datetime.fromtimestamp(shown["not_after"], dt.timezone.utc)
    term.say(f"{host}  {shown['source']}  until {ends:%Y-%m-%d %H:%M} UTC  "
             f"sha256 {shown['fingerprint'][:16]}…")


@domain_app.command("acme")
def domain_acme(host: Host, off: Annotated[bool, typer.Option(
        "--off", help="Stop (the last certificate stays until removed).")] = False,
        wait: Annotated[float, typer.Option(
            "--wait", help="Seconds to wait for the certificate (0: do not wait).")] = 0,
        tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Get the domain's certificate from the platform's ACME server, renewed before it
    ends (it comes within a minute or so: --wait, or see `hyac domain cert HOST`)."""
    import time

    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import HyacError

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        segment = client.segment(host, "domain")
        done = agent.delete(f"/v1/domains/{segment}/acme") if off else \
            agent.post(f"/v1/domains/{segment}/acme")
        if wait > 0 and not off:
            deadline = time.monotonic() + wait
            with Terminal().status(f"waiting for the certificate of {host} …"):
                while True:
                    try:
                        agent.get(f"/v1/domains/{segment}/certificate")
                        break
                    except HyacError:
                        if time.monotonic() >= deadline:
                            raise HyacError(f"no certificate for {host} within {wait:g} s (see "
                                            "`hyac domain ls --json` for the ACME error)") from None
                        time.sleep(1)  # asking the agent again: it tells no one when
            done = next((d for d in agent.get("/v1/domains") if d["host"] == done["host"]), done)
    _print_domain(done, as_json)


@domain_app.command("settings")
def domain_settings(
    suffix: Annotated[list[str] | None, typer.Option(
        "--suffix", help="Tenants may claim names under this one only; repeat for more.")] = None,
    any_suffix: Annotated[bool, typer.Option("--any-suffix", help="Drop the suffix list.")] = False,
    reserve: Annotated[list[str] | None, typer.Option(
        "--reserve", help="A name of the platform itself (and names under it); repeat.")] = None,
    verification: Annotated[str | None, typer.Option(
        "--verification", help="Ownership check of new claims: none, http or dns.")] = None,
    acme_directory: Annotated[str | None, typer.Option(
        "--acme-directory", help="The ACME server's directory URL ('' turns ACME off).")] = None,
    acme_email: Annotated[str | None, typer.Option("--acme-email", help="The ACME account's e-mail.")] = None,
    acme_ca_bundle: Annotated[Path | None, typer.Option(
        "--acme-ca-bundle", help="PEM roots of a private ACME server's HTTPS.")] = None,
    renew_before: Annotated[float | None, typer.Option(
        "--renew-before-days", help="Renew ACME certificates this long before they end (30).")] = None,
    as_json: options.Json = False,
) -> None:
    """The platform's domain settings (owner): suffixes, reserved names, ownership
    checks, ACME. No option: show them."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    changes: dict[str, Any] = {}
    if suffix or any_suffix:
        changes["domain_suffixes"] = suffix or []
    if reserve is not None:
        changes["reserved_hosts"] = reserve
    if verification is not None:
        changes["domain_verification"] = verification
    if acme_directory is not None:
        changes["acme_directory"] = acme_directory
    if acme_email is not None:
        changes["acme_email"] = acme_email
    if acme_ca_bundle is not None:
        changes["acme_ca_bundle"] = acme_ca_bundle.read_text()
    if renew_before is not None:
        changes["acme_renew_before_days"] = renew_before
    with client.connect() as agent:
        shown = (agent.request("PATCH", "/v1/edge/settings", json=changes) if changes
                 else agent.get("/v1/edge/settings"))
    term = Terminal()
    if as_json:
        term.print_json(shown)
        return
    bundle = shown.pop("acme_ca_bundle", "")
    rows = [(key, ", ".join(value) if isinstance(value, list) else str(value))
            for key, value in shown.items()]
    rows.append(("acme_ca_bundle", "set" if bundle else "system roots"))
    term.table(("setting", "value"), rows)
