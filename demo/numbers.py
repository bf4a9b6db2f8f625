"""The demo's phone numbers: all from the reserved test range (`SMS_TEST_NUMBERS`), which is never texted.

Staff (handlers, office, supervisor, leader, each department's supervisor and leader) get the first numbers
of the range, citizens the others; so with any SMS backend the demo's texts, its escalations included,
are recorded in the SMS log and reach nobody.
"""
from __future__ import annotations

from notify.test_numbers import parse_test_numbers
from tickets.phones import normalise_mobile

STAFF_NUMBERS = 80      # the first numbers of the range are kept for staff (the network's too)
POOL_SIZE = 1000        # how many numbers of a larger range the demo uses
E164_CN_DIGITS = 13     # 86 and eleven digits


class NoTestRange(Exception):
    """The configured test range holds too few mainland mobile numbers for the demo."""


class Numbers:
    def __init__(self, spec: str):
        self.pool = _pool(parse_test_numbers(spec))
        if len(self.pool) < STAFF_NUMBERS + 10:
            raise NoTestRange(
                "the demo takes its phone numbers from SMS_TEST_NUMBERS (never texted), which needs a range of at "
                f"least {STAFF_NUMBERS + 10} mainland mobile numbers, such as +8617000000; it is {spec!r}")
        self.citizens = self.pool[STAFF_NUMBERS:]

    def staff(self, index: int) -> str:
        return self.pool[index]

    def citizen(self, index: int) -> str:
        return self.citizens[index % len(self.citizens)]


def _pool(prefixes) -> list[str]:
    """Valid mainland mobile numbers (E.164) of the configured range that holds the most of them."""
    best: list[str] = []
    for prefix in prefixes:
        digits = prefix[1:]
        if not digits.startswith("86") or len(digits) > E164_CN_DIGITS:
            continue
        free = E164_CN_DIGITS - len(digits)
        candidates = (f"{prefix}{n:0{free}d}" if free else prefix for n in range(min(10 ** free, POOL_SIZE)))
        numbers = [number for number in candidates if normalise_mobile(number) == number]
        if len(numbers) > len(best):
            best = numbers
    return best


def spelled(e164: str, style: str) -> str:
    """A number as a citizen might type it on the form, to show that every spelling is understood."""
    national = e164[3:]
    parts = (national[:3], national[3:7], national[7:])
    return {"spaced": " ".join(parts), "dashed": "-".join(parts), "plus86": "+86 " + " ".join(parts)}.get(style, national)
