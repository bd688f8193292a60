"""A contact form's target: validates, filters bots, mails the message to FORM_TO.

Accepts ``application/x-www-form-urlencoded`` (a plain HTML form) or JSON with ``name``,
``email`` and ``message``. A filled-in ``website`` field (hidden from people by CSS) marks
a bot: it is answered as a success and nothing is sent. The sender's address goes in
Reply-To, never From, so the mail cannot be made to look like it came from them.
"""

import re
from urllib.parse import parse_qs

EMAIL = re.compile(r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}\.[A-Za-z]{2,}$")


def read_form(request):
    if request.headers.get("content-type", "").startswith("application/json"):
        data = request.json()
        return data if isinstance(data, dict) else {}
    return {key: values[0] for key, values in parse_qs(request.text()).items()}


def main(context: FunctionContext):
    if context.request.method != "POST":
        return Response(status=405, headers={"allow": "POST"}, body={"error": "POST the form"})
    try:
        form = read_form(context.request)
    except ValueError:
        return Response(status=400, body={"error": "the body is not a form"})
    if form.get("website"):
        context.logger.info("honeypot filled: dropped")
        return {"ok": True}
    errors = {}
    name = str(form.get("name", "")).strip()
    email = str(form.get("email", "")).strip()
    message = str(form.get("message", "")).strip()
    if not 0 < len(name) <= 100 or "\n" in name or "\r" in name:
        errors["name"] = "1 to 100 characters on one line"
    if not EMAIL.match(email):
        errors["email"] = "a valid email address"
    if not 0 < len(message) <= 5000:
        errors["message"] = "1 to 5000 characters"
    if errors:
        return Response(status=422, body={"errors": errors})
    context.mail.send(
        context.env["FORM_TO"], f"Contact form: {name}",
        text=f"From: {name} <{email}>\n\n{message}\n", reply_to=email,
    )
    thanks = context.env.get("THANKS_URL")
    if thanks and not context.request.headers.get("content-type", "").startswith("application/json"):
        return Response(status=303, headers={"location": thanks}, body=b"")
    return {"ok": True}
