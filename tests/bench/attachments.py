"""附件: what checking and re-encoding one upload costs, in time and memory, for the files phones send.

    make bench-attachments            (or: .venv/bin/python tests/bench/attachments.py [--rounds N])

Each kind of file is checked `--rounds` times in a fresh child process (so the peak memory is that file's alone):
a 12-megapixel phone photo (4032×3024 JPEG with EXIF and GPS, ~3–5 MB), a 48-megapixel one (8064×6048, ~10 MB,
decoded at a reduced scale), the same 12-megapixel photo as HEIC, a 2000×2800 PNG screenshot and a 40-page PDF.
Prints the median and worst time per file, and the child's peak resident memory before the checks (Python, the app's
modules and the file read: `base`) and after them (`peak`): the difference is what one upload costs a web process.
No database: this is `tickets.attachments.check_one`, the part of an upload that grows with the file.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make(kind: str) -> tuple[str, bytes]:
    from PIL import Image
    from pypdf import PdfWriter

    def noisy(width, height):
        base = Image.effect_noise((width // 4, height // 4), 64).convert("RGB").resize((width, height))
        gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        return Image.blend(base, gradient, 0.5)

    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 17.0)}
    exif[0x0112] = 6
    out = io.BytesIO()
    if kind == "jpeg12":
        noisy(4032, 3024).save(out, "JPEG", quality=92, exif=exif)
        return "IMG_0001.jpg", out.getvalue()
    if kind == "jpeg48":
        noisy(8064, 6048).save(out, "JPEG", quality=80, exif=exif)
        return "IMG_0002.jpg", out.getvalue()
    if kind == "heic12":
        import pillow_heif

        pillow_heif.register_heif_opener()
        noisy(4032, 3024).save(out, "HEIF", quality=80, exif=exif)
        return "IMG_0003.heic", out.getvalue()
    if kind == "png":
        noisy(2000, 2800).save(out, "PNG")
        return "截图.png", out.getvalue()
    writer = PdfWriter()
    for _ in range(40):
        writer.add_blank_page(width=595, height=842)
    writer.write(out)
    return "通知书.pdf", out.getvalue()


def child(path: str, rounds: int) -> None:
    """Runs in its own process: read the file, check it `rounds` times, print the figures as JSON. The peak memory is
    read after the imports and the read (`base_mb`) and after the checks (`peak_mb`)."""
    from tickets import attachments

    data = Path(path).read_bytes()
    name = Path(path).name
    base = high_water_mb()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        kept = attachments.check_one(attachments.Incoming(name, None, data))
        times.append(time.perf_counter() - start)
    peak = high_water_mb()
    print(json.dumps({"in_mb": len(data) / 2**20, "out_mb": len(kept.data) / 2**20,
                      "size": [kept.width, kept.height], "median_s": statistics.median(times), "max_s": max(times),
                      "peak_mb": peak, "base_mb": base}))


def high_water_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not carried over from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


KINDS = ("jpeg12", "jpeg48", "heic12", "png", "pdf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds)
        return
    import tempfile

    print(f"{'file':<8} {'sent MB':>8} {'kept MB':>8} {'kept px':>11} {'median s':>9} {'worst s':>8} {'base MB':>8} "
          f"{'peak MB':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS:
            name, data = make(kind)
            path = Path(folder) / name
            path.write_bytes(data)
            out = subprocess.run([sys.executable, __file__, "--child", str(path), "--rounds", str(args.rounds)],
                                 capture_output=True, text=True, check=True, cwd=ROOT).stdout
            r = json.loads(out.strip().splitlines()[-1])
            size = "×".join(str(v) for v in r["size"]) if r["size"][0] else "—"
            print(f"{kind:<8} {r['in_mb']:>8.1f} {r['out_mb']:>8.1f} {size:>11} {r['median_s']:>9.2f} "
                  f"{r['max_s']:>8.2f} {r['base_mb']:>8.0f} {r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
