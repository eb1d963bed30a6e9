"""How postfit asks for answers on real data: one wording per kind, used by every benchmark and source.

Math: the problem, then "Please reason step by step, and put your final answer within \\boxed{}." -- the
instruction DeepSeek-R1 and OpenR1-Math-220k were generated with, so an SFT model trained on those traces sees
the same request at test time. The verifier reads the last \\boxed{} of the reply.

Code: the statement, then how to answer -- a single ```python block holding
  - stdio problems: a complete program that reads standard input and writes standard output;
  - functional problems (LeetCode-style, a starter class/function): the completed starter code;
  - HumanEval: the completed function; the verifier runs the official harness's program, the problem's own
    prompt (`meta["code_prefix"]`) followed by the reply's code, so a reply that restates the whole function
    simply redefines the stub, and a reply that only continues the body also works.
"""

from __future__ import annotations

import re

from postfit.verify import extract

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_BLOCK = "Give your solution as a single ```python code block."


def math_prompt(problem: str) -> str:
    return f"{problem.strip()}\n\n{MATH_INSTRUCTION}"


def stdio_prompt(statement: str) -> str:
    return (
        f"{statement.strip()}\n\nWrite a complete Python 3 program that reads the input from standard input and "
        f"prints the answer to standard output. {CODE_BLOCK}"
    )


def functional_prompt(statement: str, starter_code: str) -> str:
    return (
        f"{statement.strip()}\n\nComplete the starter code below; the tests call it with the arguments given in "
        f"the examples. {CODE_BLOCK}\n```python\n{starter_code.rstrip()}\n```"
    )


def humaneval_prompt(code_prefix: str) -> str:
    return (
        f"Complete the following Python function. {CODE_BLOCK} Include the signature and any imports it needs."
        f"\n```python\n{code_prefix.rstrip()}\n```"
    )


def mbpp_prompt(text: str, tests: list[str]) -> str:
    listed = "\n".join(tests)
    return f"{text.strip()}\nYour code should pass these tests:\n{listed}\n{CODE_BLOCK}"


def last_boxed(text: str) -> str | None:
    """The content of the last complete \\boxed{...} (or \\fbox{...}) in `text`; None if there is none.

    Used only to read *reference* answers out of dataset solutions, with the extraction that scores completions
    (postfit.verify.extract), so a reference and a model's answer are read the same way.
    """
    found = extract.last_boxed(text)
    return found[1] if found else None


def gsm8k_answer(solution: str) -> str:
    """GSM8K's final answer: the text after '####', without thousands separators ('1,000' -> '1000')."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def gsm8k_trace(solution: str) -> str:
    """A GSM8K rationale as an SFT target in the math convention: calculator notes removed, answer boxed."""
    rationale = re.sub(r"<<[^>]*>>", "", solution.rsplit("####", 1)[0]).strip()
    return f"{rationale}\nThe final answer is $\\boxed{{{gsm8k_answer(solution)}}}$."


def number_text(value) -> str:
    """Numeric answers stored as floats (27.0) become '27'; everything else is str()-ed and stripped."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
