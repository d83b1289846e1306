"""Simulate a scanner: turn a PDF into the image-only PDF a printed, scanned copy would be.

Used by the OCR tests (tests/forms/corpus_scan.py) and by bench/. Each page is
rendered with pypdfium2, turned a little (paper is never fed straight), given
sensor noise, a slight blur, optionally JPEG artefacts and grey levels only,
and written back as one image per page with no text layer — exactly what an
applicant's multifunction printer e-mails.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageFilter
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from mailbot.forms import scan_pen


def _render_pages(pdf_bytes: bytes, dpi: int) -> list[Image.Image]:
    """Every page as an RGB image at ``dpi``."""
    pdf = pdfium.PdfDocument(pdf_bytes)
    try:
        return [page.render(scale=dpi / 72).to_pil().convert("RGB") for page in pdf]
    finally:
        pdf.close()


def _degrade(image: Image.Image, angle: float, noise: float, rng: np.random.Generator) -> Image.Image:
    """Rotate (white fill, as the scanner lid is white), blur a little, add noise.

    ``noise`` is the standard deviation of Gaussian noise as a fraction of
    full scale (0.05 is a poor scanner).
    """
    if angle:
        image = image.rotate(angle, resample=Image.BICUBIC, fillcolor=(255, 255, 255))
    image = image.filter(ImageFilter.GaussianBlur(0.6))  # optics: no scan is razor sharp
    if noise:
        pixels = np.asarray(image, dtype=np.float32)
        pixels += rng.normal(0.0, noise * 255, pixels.shape[:2])[..., None]
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


def _encoded(image: Image.Image, jpeg_quality: int | None) -> ImageReader:
    """The page image as the scanner stores it: JPEG at that quality, else lossless PNG."""
    buf = io.BytesIO()
    if jpeg_quality is None:
        image.save(buf, "PNG")
    else:
        image.save(buf, "JPEG", quality=jpeg_quality)  # reportlab embeds JPEG as is (DCTDecode)
    return ImageReader(io.BytesIO(buf.getvalue()))


def _image_pdf(images: list[ImageReader], sizes: list[tuple[int, int]], dpi: int) -> bytes:
    """One page per image, sized so that the image is ``dpi`` on paper; no text at all."""
    buf = io.BytesIO()
    canvas = Canvas(buf, invariant=1)  # invariant: the same scan gives the same bytes
    for image, (w, h) in zip(images, sizes):
        width, height = w * 72 / dpi, h * 72 / dpi
        canvas.setPageSize((width, height))
        canvas.drawImage(image, 0, 0, width, height)
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


def simulate_scan(pdf_bytes: bytes, *, dpi: int = 200, angle: float = 0.0, noise: float = 0.0,
                  jpeg_quality: int | None = None, grayscale: bool = False, seed: int = 0,
                  marks: Sequence[scan_pen.HandMark] = ()) -> bytes:
    """An image-only PDF of ``pdf_bytes`` as scanned at ``dpi``, turned ``angle`` degrees.

    ``noise``: Gaussian noise σ as a fraction of full scale; ``jpeg_quality``:
    JPEG-compress the pages (None: lossless); ``grayscale``: a grey scan
    (the red seal becomes grey). ``seed`` makes the noise reproducible.
    ``marks``: pen marks (a hand-drawn ✓ or ○) drawn on the printed page before it is scanned.
    """
    rng = np.random.default_rng(seed)
    pages = _render_pages(pdf_bytes, dpi)
    pages = [scan_pen.draw(p, [m for m in marks if m.page == n], dpi, rng) if marks else p for n, p in enumerate(pages)]
    pages = [_degrade(p, angle, noise, rng) for p in pages]
    if grayscale:
        pages = [p.convert("L") for p in pages]
    encoded = [_encoded(p, jpeg_quality) for p in pages]
    return _image_pdf(encoded, [p.size for p in pages], dpi)
