"""The user's language: cheap detection, the optional "answer in the user's language"
system instruction, and per-language counts for the metrics.

Detection looks at scripts first (Han, kana, Hangul, Cyrillic, Arabic: a few of those
characters outweigh Latin product names and code inside them) and at stopwords and
diacritics for Latin-script text. It reads at most `_MAX_CHARS` characters, so it stays in
the tens of microseconds on any prompt. Unknown -> "und" (no instruction is added).
"""

from __future__ import annotations

import re
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from service.config.features import LanguageSettings

UNDETERMINED = "und"
_MAX_CHARS = 2000

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "zh": "Chinese (中文)",
    "ja": "Japanese (日本語)",
    "ko": "Korean (한국어)",
    "es": "Spanish (español)",
    "fr": "French (français)",
    "de": "German (Deutsch)",
    "ru": "Russian (русский)",
    "ar": "Arabic (العربية)",
    "pt": "Portuguese (português)",
    "it": "Italian (italiano)",
}

_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kana", re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")),
    ("han", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")),
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")),
)
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z\u00c0-\u024f']+")


def _stop(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _stop(
        "the and is are was what how why when where who which to of in on you your it for this that with can "
        "could would should do does i my me please a an be have has not from about"
    ),
    "es": _stop(
        "el la los las de del que y en un una es por para con cómo qué cuál no se al mi está son puedes "
        "me lo le su muy pero también hay"
    ),
    "fr": _stop(
        "le la les des est et un une du que qui pour dans pas je vous tu ce comment pourquoi avec sur il elle "
        "au aux ne mon ma mes c'est qu'est-ce peux pouvez"
    ),
    "de": _stop(
        "der die das und ist nicht ein eine einen ich du sie wie was warum mit für auf den dem zu es kann bitte "
        "mir mich wir ihr sind oder auch noch"
    ),
    "pt": _stop(
        "o os as de que e em um uma não para com como por você é do da dos das isso esse essa meu minha "
        "pode posso muito também"
    ),
    "it": _stop(
        "il lo la gli le di che e è un una per non come perché sono con del della dei questo questa mi "
        "puoi posso anche molto"
    ),
}
_DIACRITICS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("es", re.compile(r"[ñ¿¡]"), 3),
    ("de", re.compile(r"ß"), 3),
    ("de", re.compile(r"[äöü]"), 1),
    ("fr", re.compile(r"[çœèêëîôûâ]"), 1),
    ("pt", re.compile(r"[ãõ]"), 3),
    ("it", re.compile(r"[òì]"), 1),
)


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language (en, zh, ja, ko, es, fr, de, ru, ar, pt,
    it) or "und"."""
    sample = text[:_MAX_CHARS]
    counts = {name: len(pattern.findall(sample)) for name, pattern in _SCRIPTS}
    latin = len(_LATIN.findall(sample))
    # Japanese mixes kana with kanji; any real amount of kana decides it.
    if counts["kana"] >= 2 or (counts["kana"] and counts["kana"] * 5 >= counts["han"]):
        return "ja"
    counts["zh"] = counts.pop("han")
    counts.pop("kana")
    script, found = max(counts.items(), key=lambda kv: kv[1])
    # One CJK character carries about a word: a handful outweighs Latin names and code.
    if found >= 2 and found * 4 >= latin * (1 if script in ("ru", "ar") else 0.25):
        return script
    if latin == 0:
        return script if found else UNDETERMINED
    return _latin_language(sample.lower())


def _latin_language(lowered: str) -> str:
    words = _WORD.findall(lowered)
    scores = Tally[str]()
    for word in words:
        for lang, stop in _STOPWORDS.items():
            if word in stop:
                scores[lang] += 1
    for lang, pattern, weight in _DIACRITICS:
        if pattern.search(lowered):
            scores[lang] += weight
    if not scores:
        return UNDETERMINED
    # Ties go to the order of _STOPWORDS (English first).
    best = max(_STOPWORDS, key=lambda lang: scores[lang])
    return best if scores[best] > 0 else UNDETERMINED


def has_system_message(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(m.get("role") in ("system", "developer") for m in messages)


def language_instruction(language: str, settings: LanguageSettings) -> str | None:
    name = LANGUAGE_NAMES.get(language)
    return settings.template.format(language=name) if name else None


def with_language_instruction(
    messages: Sequence[Mapping[str, Any]], language: str, settings: LanguageSettings
) -> list[dict[str, Any]]:
    """The messages with a leading system instruction to answer in `language`, when the
    feature is on, the language is known and the request has no system message of its own.
    Never mutates the input."""
    out = [dict(m) for m in messages]
    if not settings.instruction_enabled or has_system_message(messages):
        return out
    instruction = language_instruction(language, settings)
    if instruction is None:
        return out
    return [{"role": "system", "content": instruction}, *out]


class LanguageCounter:
    """Requests per detected language: a plain tally, and the Prometheus counter
    `<namespace>_request_language_total{language}` on the given registry (if any)."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "llm") -> None:
        self.counts: Tally[str] = Tally()
        self._counter = (
            Counter(
                "request_language",
                "Requests by detected user language (ISO 639-1, und = unknown)",
                ["language"],
                namespace=namespace,
                registry=registry,
            )
            if registry is not None
            else None
        )

    def observe(self, language: str) -> None:
        label = language if language in LANGUAGE_NAMES else UNDETERMINED
        self.counts[label] += 1
        if self._counter is not None:
            self._counter.labels(language=label).inc()
