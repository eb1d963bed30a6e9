"""Math verification: a corpus of equal and unequal answer pairs we wrote, and where the final answer is read."""

from __future__ import annotations

import threading

import pytest

from postfit.item import Item
from postfit.verify import score
from postfit.verify.extract import math_answer


def math_item(answer: str | None) -> Item:
    return Item(id="t", source="t", domain="math", prompt="", split="test", answer=answer)


# (reference, completion, expected value). Every group has both outcomes, so a verifier that always says
# yes or always says no fails it.
CORPUS = [
    # fractions and decimals
    ("\\frac{1}{2}", "So the result is \\boxed{0.5}", 1.0),
    ("\\frac{1}{2}", "Answer: 1/2", 1.0),
    ("\\frac{1}{2}", "Answer: 2/4", 1.0),
    ("\\dfrac{3}{4}", "Answer: 0.75", 1.0),
    ("\\frac{1}{2}", "Answer: 1/3", 0.0),
    ("\\frac{3}{4}", "\\boxed{\\frac{4}{3}}", 0.0),
    # intervals
    ("[-2, 7]", "Answer: $[-2,7]$", 1.0),
    ("(-\\infty, 3)", "\\boxed{(-\\infty,3)}", 1.0),
    ("(-\\infty, 3)", "Answer: (-oo, 3)", 1.0),
    ("[-2, 7]", "Answer: $(-2,7)$", 0.0),
    ("(-\\infty, 3)", "Answer: (-inf, 3]", 0.0),
    # sets and lists of solutions
    ("\\{1, 2, 3\\}", "\\boxed{\\{3,2,1\\}}", 1.0),
    ("1,2,3", "Answer: 3, 2, 1", 1.0),
    ("\\{1, 2, 3\\}", "\\boxed{\\{1,2\\}}", 0.0),
    # units
    ("10\\text{ cm}", "\\boxed{10}", 1.0),
    ("10", "Answer: 10 cm", 1.0),
    ("12", "Answer: 12 dollars", 1.0),
    ("10", "The final answer is $10\\,\\text{cm}$. I hope it is correct.", 1.0),
    ("12", "Answer: 13 dollars", 0.0),
    ("10\\text{ cm}", "\\boxed{100}", 0.0),
    # scientific notation
    ("1.5\\times 10^{3}", "Answer: 1500", 1.0),
    ("1500", "Answer: 1.5e3", 1.0),
    ("6.02 \\times 10^{23}", "Answer: 6.02e23", 1.0),
    ("1e-5", "Answer: 0.00001", 1.0),
    ("1500", "Answer: 1.5e4", 0.0),
    ("6.02 \\times 10^{23}", "Answer: 6.02e22", 0.0),
    # LaTeX vs plain expressions
    ("\\frac{\\sqrt{2}}{2}", "Answer: sqrt(2)/2", 1.0),
    ("2\\sqrt{3}", "Answer: $\\sqrt{12}$", 1.0),
    ("\\frac{\\pi}{2}", "Answer: pi/2", 1.0),
    ("(x+1)^2", "\\boxed{x^2+2x+1}", 1.0),
    ("1000", "Answer: 1,000", 1.0),
    ("\\frac{\\sqrt{2}}{2}", "Answer: \\sqrt{2}", 0.0),
    ("\\frac{\\pi}{2}", "Answer: pi/3", 0.0),
    ("-3", "Answer: 3", 0.0),
    # equations, percentages, choices
    ("x = 5", "Answer: 5", 1.0),
    ("5", "Answer: x=5", 1.0),
    ("50\\%", "Answer: 50", 1.0),
    ("E", "Answer: E", 1.0),
    ("\\text{(B)}", "Answer: B", 1.0),
    ("E", "Answer: D", 0.0),
    # boxed vs final-answer line: the one written last is the answer
    ("4", "\\boxed{3} wait, that is wrong. Answer: 4", 1.0),
    ("3", "\\boxed{3} wait, that is wrong. Answer: 4", 0.0),
    ("3", "Answer: 4. Let me check again... \\boxed{3}", 1.0),
    ("204", "#### 204", 1.0),
    ("204", "Final Answer: The final answer is 204. I hope it is correct.", 1.0),
    ("70", "so 70 is wrong. Answer: 71", 0.0),
    # missing or malformed answers
    ("70", "I think it is 70", 0.0),
    ("70", "", 0.0),
    ("70", "\\boxed{70", 0.0),
    ("70", "\\boxed{}", 0.0),
    ("70", "Answer:", 0.0),
    ("70", "Answer: ???", 0.0),
]


@pytest.mark.parametrize(("reference", "completion", "value"), CORPUS)
def test_corpus(reference, completion, value):
    assert score(math_item(reference), completion)[1] == value


def test_corpus_is_balanced():
    values = [v for *_, v in CORPUS]
    assert 20 <= values.count(0.0) and 20 <= values.count(1.0)


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("The area is \\boxed{\\frac{1}{2}} square units.", "\\frac{1}{2}"),
        ("nested \\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),
        ("first \\boxed{1}, then \\boxed{2}", "2"),
        ("Answer: The answer is $7$.", "$7$"),
        ("The final answer is $\\boxed{12}$. I hope it is correct.", "12"),
        ("answer: 1/2.\nSome trailing remark without an answer", "1/2"),
        ("\\boxed{5} and an unclosed \\boxed{6", "5"),
        ("the number 42 appears but nothing is committed", None),
        ("\\boxed{}", None),
    ],
)
def test_extraction(completion, answer):
    assert math_answer(completion) == answer


def test_score_returns_the_extracted_answer():
    assert score(math_item("3"), "We get \\boxed{3}.") == ("3", 1.0)
    assert score(math_item("3"), "no idea") == (None, 0.0)


def test_works_outside_the_main_thread():
    """math-verify's timeouts use signals (main thread only); reward functions may run in a thread pool."""
    out = []
    t = threading.Thread(target=lambda: out.append(score(math_item("1/2"), "Answer: 0.5")))
    t.start()
    t.join()
    assert out == [("0.5", 1.0)]


def test_item_without_reference_is_an_error():
    with pytest.raises(ValueError, match="cannot be verified"):
        score(math_item(None), "Answer: 1")
