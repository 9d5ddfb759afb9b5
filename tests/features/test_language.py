"""Language detection, the answer-in-your-language instruction, per-language counts."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from service.config.features import LanguageSettings
from service.pipeline.language import LanguageCounter, detect_language, with_language_instruction


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I renew my passport before the trip?", "en"),
        ("周末去杭州玩两天，有什么推荐的路线？", "zh"),
        ("Java里HashMap和Hashtable有什么区别？", "zh"),
        ("東京でおすすめのラーメン屋はどこですか？", "ja"),
        ("この関数のバグを直してください", "ja"),
        ("서울에서 가볼 만한 곳을 추천해 주세요.", "ko"),
        ("¿Cuál es la mejor época para visitar Madrid?", "es"),
        ("Pourquoi le ciel est-il bleu pendant la journée ?", "fr"),
        ("Wie kann ich meine Steuererklärung online einreichen?", "de"),
        ("Как приготовить борщ по классическому рецепту?", "ru"),
        ("ما هي أفضل طريقة لتعلم البرمجة؟", "ar"),
        ("Qual é a melhor praia do Brasil para surfar?", "pt"),
        ("Come posso migliorare il mio italiano parlato?", "it"),
        ("12345 !!!", "und"),
        ("", "und"),
    ],
)
def test_detects_languages(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_latin_names_inside_chinese_do_not_flip_it() -> None:
    assert detect_language("用Python写一个function, 调用requests库下载网页") == "zh"
    assert detect_language("I visited 北京 last summer and loved the food there.") == "en"


def test_instruction_added_only_when_enabled_known_and_no_system_message() -> None:
    user = [{"role": "user", "content": "Как дела?"}]
    on = LanguageSettings(instruction_enabled=True)
    out = with_language_instruction(user, "ru", on)
    assert out[0] == {"role": "system", "content": on.template.format(language="Russian (русский)")}
    assert out[1:] == user
    assert len(user) == 1
    assert with_language_instruction(user, "ru", LanguageSettings()) == user  # off by default
    assert with_language_instruction(user, "und", on) == user
    own = [{"role": "system", "content": "Be terse."}, *user]
    assert with_language_instruction(own, "ru", on) == own
    dev = [{"role": "developer", "content": "Be terse."}, *user]
    assert with_language_instruction(dev, "ru", on) == dev
    custom = LanguageSettings(instruction_enabled=True, template="Reply in {language}.")
    assert with_language_instruction(user, "ru", custom)[0]["content"] == "Reply in Russian (русский)."


@pytest.mark.parametrize(
    ("template", "message"),
    [("Answer politely.", "placeholder {language}"), ("In {language} {oops}", "not a valid format string")],
)
def test_template_must_name_the_language(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LanguageSettings(template=template)


def test_counts_per_language_on_a_given_registry() -> None:
    registry = CollectorRegistry()
    counter = LanguageCounter(registry)
    for text in ("Hello, how are you?", "你好，今天怎么样？", "你在做什么？", "¿Qué tal?", "?!"):
        counter.observe(detect_language(text))
    counter.observe("xx")  # unknown codes are folded into und
    assert counter.counts == {"en": 1, "zh": 2, "es": 1, "und": 2}
    assert registry.get_sample_value("llm_request_language_total", {"language": "zh"}) == 2
    LanguageCounter()  # no registry: no global side effects, so a second one is fine
    LanguageCounter()
