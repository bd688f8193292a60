"""Makes thumbnails of an image and stores them in the tenant's object storage.

Send the image as the raw body (``content-type: image/png``...) or as JSON
``{"image_b64": "...", "name": "cat.png"}``. Each width in THUMB_SIZES gives one PNG at
``thumbnails/<name>-<hash>/<width>.png``; the answer lists them. Images above 40 megapixels are
refused before they are decoded (a decompression bomb would exhaust memory).
"""

import base64
import binascii
import hashlib
import io
import re

from PIL import Image

Image.MAX_IMAGE_PIXELS = 40_000_000
MAX_BYTES = 5 * 1024 * 1024


def sizes(context):
    widths = []
    for part in context.env.get("THUMB_SIZES", "64,256").split(","):
        if part.strip().isdigit() and 0 < int(part) <= 2048:
            widths.append(int(part))
    return widths or [128]


def main(context: FunctionContext):
    name = "image"
    if context.request.headers.get("content-type", "").startswith("application/json"):
        try:
            payload = context.request.json()
            data = base64.b64decode(payload["image_b64"], validate=True)
            name = str(payload.get("name") or name)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return Response(status=400, body={"error": "send {\"image_b64\": ...} or the image itself"})
    else:
        data = context.request.body
    if not data or len(data) > MAX_BYTES:
        return Response(status=413 if data else 400, body={"error": f"an image of 1 to {MAX_BYTES} bytes"})
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit(".", 1)[0])[:64] or "image"
    stem = f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}"
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.width * image.height > Image.MAX_IMAGE_PIXELS:
            # Pillow itself only refuses twice its limit: refuse before decoding
            return Response(status=413, body={
                "error": f"{image.width}x{image.height} is more than "
                         f"{Image.MAX_IMAGE_PIXELS // 1_000_000} megapixels"})
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        return Response(status=422, body={"error": f"not an image Pillow can read: {exc}"})
    stored = []
    for width in sizes(context):
        copy = image.convert("RGBA")
        copy.thumbnail((width, width * 4))
        out = io.BytesIO()
        copy.save(out, "PNG")
        info = context.storage.put(f"thumbnails/{stem}/{width}.png", out.getvalue(), "image/png")
        stored.append({"key": info.key, "width": copy.width, "height": copy.height, "size": info.size})
    context.logger.info("%d thumbnails of %s", len(stored), stem)
    return {"source": {"format": image.format, "width": image.width, "height": image.height},
            "thumbnails": stored}
