"""Intent classification for routing: general, code or math.

`classify(text)` is a pure function over the last user message: weighted regular
expressions score programming signals (code fences, inline code, syntax, error names,
languages and tools, programming vocabulary in English and Chinese) and mathematical
signals (arithmetic, equations, math notation and vocabulary, unit conversions and word
problems). Vocabulary alone is weaker evidence than syntax: when the message is framed as
an everyday request (a recommendation, a purchase, a career question, an opinion, a
letter or email to write), that framing is subtracted from the vocabulary score, so "a
laptop for programming" or "an email about an 8% rent rise" stay general while code and
formulas still win. The larger score wins when it reaches `_THRESHOLD`; otherwise the
query is general. No model, no I/O: a few dozen
microseconds per query, so it runs inline on every `model: "auto"` request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Intent(StrEnum):
    GENERAL = "general"
    CODE = "code"
    MATH = "math"


@dataclass(frozen=True, slots=True)
class _Signal:
    pattern: re.Pattern[str]
    weight: int
    # How many distinct matches count (a long list of tool names is not 10x the evidence).
    cap: int = 2


def _words(*words: str, weight: int, flags: int = re.IGNORECASE, cap: int = 2) -> _Signal:
    """English words/phrases with word boundaries (regex fragments allowed)."""
    # ASCII word boundaries: a Latin word right next to Chinese text ("用Java写") still
    # counts; a leading \b lets the engine skip non-word starts (30x faster than a lookbehind).
    pattern = r"\b(?<![.])(?:" + "|".join(words) + r")(?![A-Za-z0-9_])"
    return _Signal(re.compile(pattern, flags | re.ASCII), weight, cap)


def _cjk(*words: str, weight: int, cap: int = 2) -> _Signal:
    """Chinese words: no word boundaries in CJK text."""
    return _Signal(re.compile("(?:" + "|".join(words) + ")"), weight, cap)


def _rx(pattern: str, weight: int, flags: int = 0, cap: int = 1) -> _Signal:
    return _Signal(re.compile(pattern, flags), weight, cap)


_I = re.IGNORECASE

# Programming syntax: evidence on its own, whatever the framing.
_CODE_SYNTAX: tuple[_Signal, ...] = (
    _rx(r"```", 5),
    _rx(r"`[^`\n]{1,80}`", 2),
    _rx(r"^\s*(?:def|class|import|from\s+\S+\s+import|#include|package|using\s+namespace)\b", 3, re.MULTILINE),
    _rx(r"=>|->\s*\w|::|&&|\|\||!==?|===|\+\+|;\s*$|;\s*\w+\s*\(", 2, re.MULTILINE),
    _rx(r"\b(?:console\.log|print|printf|println|System\.out|fmt\.Print\w*)\s*\(", 3),
    _rx(r"\b[a-z_][A-Za-z0-9_]*\.[a-z_][A-Za-z0-9_]*\s*\(", 2),
    _rx(r"\b[A-Za-z_]\w*\(\)", 2),
    _rx(
        r"\b(?:const|let|var|val|auto)\s+\w+\s*=|\b(?:func|fn|def|function)\s+\w+\s*\(|\bawait\s+\w+|\basync\s+def\b",
        2,
    ),
    _rx(r"\b[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+\b", 1, cap=2),  # CamelCase identifiers
    _rx(r"\b[a-z]+(?:[A-Z][a-z0-9]+)+\b", 1, cap=2),  # camelCase identifiers
    _rx(r"\b[a-z]+_[a-z0-9_]+\b", 1),  # snake_case identifiers
    _rx(r"\b\w*(?:Error|Exception)\b|Traceback|segfault|segmentation fault|stack ?trace|CrashLoopBackOff", 2, _I),
    _rx(r"(?<![\w/])\.(?:py|js|ts|tsx|jsx|java|go|rs|cpp|cc|h|cs|rb|php|sh|sql|yaml|yml|json|toml|jpe?g|png|csv)\b", 2),
    _rx(r"(?:^|\s)--?[a-z][\w-]*|\bHEAD~\d", 1, re.MULTILINE),
    _rx(r"\b(?:SELECT|INSERT|UPDATE|DELETE|GROUP BY|ORDER BY|JOIN|WHERE|DISTINCT)\b", 2, cap=1),
    # A language named as the tool of a writing task: "用Java写", "implement it in Rust".
    _rx(
        r"(?:用|使用|基于)\s*(?:python|java|rust|swift|ruby|go|c\+\+|c#|kotlin|javascript|typescript|js|php|scala)"
        r"\s*(?:来)?\s*(?:写|实现|编写|开发|做)",
        2,
        _I,
    ),
    _rx(
        r"\b(?:write|implement|code|build|create)\b.{0,60}\b(?:in|using)\s+"
        r"(?:python|java|rust|swift|ruby|go|kotlin|scala|bash|c\+\+|c#)(?![A-Za-z0-9_])",
        2,
        _I,
    ),
)

# Programming vocabulary: evidence unless the message is framed as an everyday request.
_CODE_VOCABULARY: tuple[_Signal, ...] = (
    # Languages, frameworks and tools that are unambiguous.
    _words(
        r"javascript",
        r"typescript",
        r"c\+\+",
        r"c#",
        r"golang",
        r"kotlin",
        r"php",
        r"perl",
        r"scala",
        r"sql",
        r"mysql",
        r"postgres(?:ql)?",
        r"sqlite",
        r"mongodb",
        r"redis",
        r"html",
        r"css",
        r"node\.?js",
        r"django",
        r"flask",
        r"fastapi",
        r"spring boot",
        r"vue3?",
        r"angular",
        r"jquery",
        r"webpack",
        r"npm",
        r"pip",
        r"pytest",
        r"junit",
        r"pandas",
        r"numpy",
        r"docker",
        r"kubernetes",
        r"k8s",
        r"git",
        r"github",
        r"nginx",
        r"terraform",
        r"linux",
        r"jvm",
        r"json",
        r"regex",
        r"api",
        r"sdk",
        r"cli",
        r"goroutines?",
        r"c语言",
        r"go语言",
        weight=2,
    ),
    # Ambiguous names: a snake, an island, a gemstone... need a second signal.
    _words(r"python", r"java", r"rust", r"swift", r"ruby", r"react", r"shell", r"bash", r"android", r"ios", weight=1),
    # Programming vocabulary: terms of art...
    _words(
        r"code",
        r"coding",
        r"programming",
        r"debug(?:ging)?",
        r"bugs?",
        r"compil(?:e|er|ing)",
        r"refactor\w*",
        r"algorithms?",
        r"(?:time|space) complexity",
        r"big[- ]o",
        r"linked lists?",
        r"binary (?:search|tree)",
        r"hash ?(?:map|table)s?",
        r"quicksort",
        r"merge ?sort",
        r"recursion",
        r"memoi[sz]ation",
        r"(?:list|dict|set) comprehensions?",
        r"unit tests?",
        r"virtual environment",
        r"dependency injection",
        r"garbage collect(?:ion|or)",
        r"borrow checker",
        r"memory leaks?",
        r"leak\w* memory",
        r"deadlocks?",
        r"abstract class",
        r"rest(?:ful)? api",
        r"endpoints?",
        r"async/await",
        r"callbacks?",
        r"one-liner",
        r"reverse proxy",
        r"repo(?:sitory)?",
        r"(?:last|a|the|my|this|previous|git) commits?(?! to)",
        r"process(?:es)? and (?:a )?threads?",
        r"threads? and (?:a )?process(?:es)?",
        r"multi-?thread\w*",
        r"lru",
        r"segmentation fault",
        r"re-?renders?",
        r"race conditions?",
        r"tuples?",
        r"mutex\w*",
        weight=2,
    ),
    # ...and words that are programming only with company.
    _words(
        r"program",
        r"undefined",
        r"null",
        r"keyword",
        r"decorators?",
        r"dictionar(?:y|ies)",
        r"promises?",
        r"component",
        r"div",
        r"pod",
        r"container",
        r"server",
        r"script",
        r"database",
        r"query",
        r"interface",
        r"variable",
        r"array",
        r"loop",
        r"frontend",
        r"backend",
        r"deploy\w*",
        r"http",
        r"csv",
        r"s3",
        r"stack",
        r"cache",
        r"class",
        r"function",
        r"request",
        r"response",
        r"app",
        weight=1,
    ),
    _rx(
        r"\b(?:write|implement|create|build|make)\b.{0,40}\b(?:function|class|script|program|method|module|"
        r"query|regex|tests?|server|app)\b",
        1,
        _I,
    ),
    # Chinese programming vocabulary.
    _cjk(
        r"代码",
        r"编程",
        r"程序(?!员)",
        r"报错",
        r"调试",
        r"编译",
        r"脚本",
        r"数据库",
        r"前端",
        r"后端",
        r"接口",
        r"爬虫",
        r"正则",
        r"深拷贝",
        r"浅拷贝",
        r"多线程",
        r"死锁",
        r"内存溢出",
        r"内存泄漏",
        r"二叉树",
        r"遍历",
        r"排序",
        r"链表",
        r"智能指针",
        r"指针",
        r"数据源",
        r"容器",
        r"部署",
        r"小程序",
        r"变量",
        weight=2,
    ),
    _cjk(
        r"数组",
        r"列表",
        r"元组",
        r"字典",
        r"去重",
        r"缓存",
        r"分支",
        r"端口",
        r"进程",
        r"服务器",
        r"日志",
        r"函数",
        r"安装包",
        weight=1,
    ),
    _cjk(r"设计模式", r"单例", r"线程安全", r"并发", r"多态", r"继承", weight=2),
    _rx(r"(?:用|写).{0,8}(?:函数|程序(?!员)|代码|脚本|实现)", 1),
)

# Mathematical notation: evidence on its own.
_MATH_NOTATION: tuple[_Signal, ...] = (
    _rx(r"\d+(?:\.\d+)?\s*[-+*/×÷^]\s*\(?\d+", 3),
    _rx(r"[a-z0-9)]\s*\^\s*[\d(a-z]|[a-z)\d][²³]|[√∫∑∏π≤≥≠±∞]|[₀-₉]|\\(?:frac|int|sqrt|sum)", 3, _I),
    _rx(r"\b\d+[a-z]\b\s*[-+=]|[-+=]\s*\d*[a-z]\b(?!\w)\s*(?:[-+=]|$)|\b[a-z]\s*[=<>]\s*[-\d(]", 2, _I),
    _rx(r"\b[a-z]\s*\(\s*[a-z]\s*\)|\b(?:sin|cos|tan|log|ln|exp|lim)(?![a-z])\s*[(\w₀-₉]", 3, _I),
    _rx(r"\b\d+/\d+\b", 2),
    _rx(r"=\s*[?？]|\b(?:what|how much)(?: is|'s) \d", 2, _I),
    _rx(r"\d+(?:\.\d+)?\s*%\s*of\s+\$?\d", 2),
    _rx(r"\(\s*-?\d+\s*,\s*-?\d+\s*\)", 1),
    _rx(r"\$\d", 1),
)

_UNITS = (
    r"fahrenheit|celsius|kelvin|(?:milli|centi|kilo)?(?:meters?|metres?|liters?|litres?|grams?)|gallons?|quarts?|"
    r"pints?|ounces?|pounds?|lbs?|miles?|mph|km/h|kph|feet|foot|inches|yards?|acres?|hectares?|tons?|kg|ml"
)

# Mathematical vocabulary: evidence unless the message is framed as an everyday request.
_MATH_VOCABULARY: tuple[_Signal, ...] = (
    # A percentage is a weak cue (rents, discounts and tips in ordinary questions).
    _rx(r"\d+(?:\.\d+)?\s*%|\bpercent(?:age)?\b", 1, _I),
    # Units and conversions: "convert 72 degrees fahrenheit to celsius", "liters in 3.5 gallons".
    _words(_UNITS, weight=1),
    _rx(r"\d(?:\.\d+)?\s*(?:" + _UNITS + r")(?![A-Za-z])", 1, _I),
    _words(r"convert\w*", r"how many (?:" + _UNITS + r") (?:are |is )?in", weight=1),
    # English vocabulary.
    _words(
        r"equations?",
        r"derivatives?",
        r"differentiate",
        r"integra(?:l|ls|te)",
        r"limit of",
        r"probability",
        r"eigen\w+",
        r"determinant",
        r"matri(?:x|ces)",
        r"theorem",
        r"prove that",
        r"proof",
        r"irrational",
        r"prime",
        r"gcd",
        r"lcm",
        r"greatest common divisor",
        r"least common multiple",
        r"fractions?",
        r"square root",
        r"logarithm",
        r"log base",
        r"standard deviation",
        r"variance",
        r"median",
        r"expected value",
        r"arithmetic",
        r"geometric",
        r"sequence",
        r"series",
        r"diverge\w*",
        r"converge\w*",
        r"polynomial",
        r"quadratic",
        r"perimeter",
        r"area of",
        r"volume of",
        r"radius",
        r"diagonals?",
        r"hexagon",
        r"decagon",
        r"polygon",
        r"triangle",
        r"interior angles?",
        r"slope",
        r"roots of",
        r"solve for",
        r"simplify",
        r"expand",
        r"binomial",
        r"taylor",
        r"inverse of",
        r"how many ways",
        r"without replacement",
        r"compound\w*",
        r"interest",
        r"power of",
        r"even, odd",
        r"odd numbers",
        r"sum of",
        r"mean of",
        r"average of",
        r"average speed",
        r"speed(?! up)",
        weight=2,
    ),
    _words(
        r"solve",
        r"calculate",
        r"compute",
        r"evaluate",
        r"find the",
        r"angle",
        r"chance",
        r"dice?",
        r"discount\w*",
        r"average",
        r"plus",
        r"minus",
        r"times",
        r"divided by",
        r"cm",
        r"km",
        r"\$\d+",
        weight=1,
    ),
    # Chinese vocabulary.
    _cjk(
        r"方程",
        r"求解",
        r"解不等式",
        r"不等式",
        r"导数",
        r"积分",
        r"极限",
        r"概率",
        r"矩阵",
        r"行列式",
        r"定理",
        r"证明",
        r"数列",
        r"公差",
        r"质数",
        r"素数",
        r"公约数",
        r"公倍数",
        r"次方",
        r"平方",
        r"复利",
        r"利率",
        r"复数",
        r"分数",
        r"面积",
        r"体积",
        r"周长",
        r"半径",
        r"三角形",
        r"边形",
        r"内角",
        r"斜边",
        r"长方体",
        r"正方体",
        r"平均数",
        r"中位数",
        r"众数",
        r"整数",
        r"最小值",
        r"最大值",
        r"连续",
        r"速度",
        r"选法",
        r"排列",
        r"组合数",
        r"打.折",
        r"计算(?!机)",
        r"换算",
        weight=2,
    ),
    _cjk(r"等于", r"倍", r"函数", r"求", r"直角", r"统计", r"摄氏", r"华氏", r"公里", r"英里", r"加仑", weight=1),
)

# Everyday framing: recommendations, purchases, careers, opinions, letters and emails.
_GENERAL_FRAMING: tuple[_Signal, ...] = (
    _words(
        r"recommend\w*",
        r"suggest\w*",
        r"laptops?",
        r"budget",
        r"buy(?:ing)?",
        r"career\w*",
        r"salar(?:y|ies)",
        r"replace",
        r"(?:your|an) opinion",
        r"worth it",
        r"emails?(?! address)",
        r"(?:a|cover|thank[- ]you|recommendation) letter",
        r"letters? to",
        r"negotiat\w*",
        r"poem",
        r"essay",
        weight=1,
        cap=3,
    ),
    _cjk(
        r"推荐",
        r"预算",
        r"笔记本电脑",
        r"买",
        r"职业",
        r"工作",
        r"取代",
        r"怎么看",
        r"会不会",
        r"前景",
        r"邮件",
        r"一封",
        weight=1,
        cap=3,
    ),
)

_THRESHOLD = 2
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_ZH_QUANTITY_QUESTION = re.compile(r"多少|几")
# An English question asking for a quantity (or a time) derived from the given numbers.
_EN_QUANTITY_QUESTION = re.compile(
    r"\b(?:how (?:many|much|long|far|fast|old)|what (?:number|time|is the (?:value|total|number))"
    r"|when (?:does|do|will|did)|which number|find the)\b",
    re.IGNORECASE,
)


def _score(text: str, signals: Sequence[_Signal]) -> int:
    total = 0
    for signal in signals:
        if signal.cap == 1:
            if signal.pattern.search(text):
                total += signal.weight
            continue
        found = {m.group(0).lower() for m in signal.pattern.finditer(text)}
        total += signal.weight * min(len(found), signal.cap)
    return total


def _quantity_question_score(text: str) -> int:
    """A "how many / how much / when" question over given numbers is a word problem.

    Chinese: two numbers or more are evidence, one is a hint. English asks "how many"
    of everyday facts more often ("calories in 2 eggs and 3 slices"): three numbers are
    evidence, one or two a hint.
    """
    numbers = len(_DIGITS.findall(text))
    if _ZH_QUANTITY_QUESTION.search(text):
        return min(numbers, 2)
    if _EN_QUANTITY_QUESTION.search(text):
        return 2 if numbers >= 3 else min(numbers, 1)
    return 0


@dataclass(frozen=True, slots=True)
class Classification:
    intent: Intent
    code_score: int
    math_score: int


def explain(text: str) -> Classification:
    """The decision and the scores behind it (for logs and tuning)."""
    code_words = _score(text, _CODE_VOCABULARY)
    math_words = _score(text, _MATH_VOCABULARY) + _quantity_question_score(text)
    framing = _score(text, _GENERAL_FRAMING) if code_words or math_words else 0
    code = _score(text, _CODE_SYNTAX) + max(0, code_words - framing)
    math = _score(text, _MATH_NOTATION) + max(0, math_words - framing)
    if max(code, math) < _THRESHOLD:
        intent = Intent.GENERAL
    elif code >= math:
        intent = Intent.CODE
    else:
        intent = Intent.MATH
    return Classification(intent, code, math)


def classify(text: str) -> Intent:
    """general, code or math for one user message (English or Chinese)."""
    return explain(text).intent


def message_text(content: Any) -> str:
    """The text of an OpenAI message `content`: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "\n".join(t for t in parts if isinstance(t, str))
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message of a chat request ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def request_text(body: Mapping[str, Any]) -> str:
    """What to classify in a request body: chat `messages` or a completions `prompt`."""
    messages = body.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return last_user_text([m for m in messages if isinstance(m, Mapping)])
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence) and prompt and isinstance(prompt[-1], str):
        return prompt[-1]
    return ""
