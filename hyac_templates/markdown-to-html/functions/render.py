"""Renders Markdown (with tables, fenced code and footnotes) to HTML.

    hyac invoke render --data '{"markdown": "# Title"}'
    curl --data-binary @README.md -H "content-type: text/markdown" $URL/default/render

JSON in gives ``{"html": ...}``; any other body gives ``text/html``. Raw HTML in the
Markdown is dropped, links and images keep only http(s), mailto and relative addresses
(``javascript:`` is gone), and attributes only those Markdown itself writes (``{onclick=…}``
of attribute lists is gone), so user input cannot inject scripts into the page.
"""

import re

import markdown
from markdown.treeprocessors import Treeprocessor

MAX_CHARS = 200_000
#: attributes Markdown and its "extra" extensions write; any other is dropped
ATTRIBUTES = {"href", "src", "alt", "title", "id", "class", "colspan", "rowspan", "start",
              "align", "rel", "rev", "role", "style"}
SAFE_URL = re.compile(r"^(https?:|mailto:|#|/|\./|\.\./|[^:/?#]+(?:[/?#]|$))", re.IGNORECASE)
ALIGN_STYLE = re.compile(r"^text-align: (left|right|center);?$")


class Sanitize(Treeprocessor):
    """The last step: unsafe addresses and attributes leave the tree."""

    def run(self, root):
        for element in root.iter():
            for name in list(element.attrib):
                value = element.attrib[name]
                if (name not in ATTRIBUTES
                        or name in ("href", "src") and not SAFE_URL.match(
                            "".join(value.split()))
                        or name == "style" and not ALIGN_STYLE.match(value)):
                    del element.attrib[name]


def render(text: str) -> str:
    md = markdown.Markdown(extensions=["extra", "sane_lists"], output_format="html")
    # Python-Markdown passes raw HTML through; these two handlers are what does it.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    md.treeprocessors.register(Sanitize(md), "sanitize", 0)
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
