"""Renders Markdown (with tables, fenced code and footnotes) to HTML.

    hyac invoke render --data '{"markdown": "# Title"}'
    curl --data-binary @README.md -H "content-type: text/markdown" $URL/default/render

JSON in gives ``{"html": ...}``; any other body gives ``text/html``. Raw HTML in the
Markdown is dropped, so user input cannot inject scripts into the page.
"""

import markdown

MAX_CHARS = 200_000


def render(text: str) -> str:
    md = markdown.Markdown(extensions=["extra", "sane_lists"], output_format="html")
    # Python-Markdown passes raw HTML through; these two handlers are what does it.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(text)


def main(context: FunctionContext):
    as_json = context.request.headers.get("content-type", "").startswith("application/json")
    if as_json:
        try:
            payload = context.request.json()
            text = payload["markdown"]
        except (ValueError, KeyError, TypeError):
            return Response(status=400, body={"error": "send {\"markdown\": \"...\"}"})
    else:
        text = context.request.text()
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return Response(status=400, body={"error": f"markdown: text of at most {MAX_CHARS} characters"})
    html = render(text)
    if as_json:
        return {"html": html}
    return Response(headers={"content-type": "text/html; charset=utf-8"}, body=html)
