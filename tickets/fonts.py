"""Where this machine keeps a font that draws Chinese: the report's PDF (reports/fonts.py) embeds one, the citizen's
receipt picture (`tickets.receipt`) draws with one."""
from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

KNOWN_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/simhei.ttf",
    "C:/Windows/Fonts/simsun.ttc",
)


@lru_cache(maxsize=1)
def system_fonts() -> tuple[str, ...]:
    """Files fontconfig knows for Chinese (TrueType and OpenType), sorted; none without fontconfig."""
    if shutil.which("fc-list") is None:
        return ()
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    files = {line.split(":")[0].strip() for line in listing.splitlines()}
    return tuple(sorted(f for f in files if f.lower().endswith((".ttf", ".ttc", ".otf"))))


@lru_cache(maxsize=16)
def pillow_font(size: int):
    """A Pillow font of `size` pixels that draws Chinese: the first known or system font that opens, else Pillow's
    own (which draws no Chinese, but draws)."""
    from PIL import ImageFont

    for path in (*KNOWN_PATHS, *system_fonts()):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)
