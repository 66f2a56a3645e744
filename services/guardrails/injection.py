"""Rule-based prompt-injection detection over normalised views of the text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.guardrails.normalize import marker_view, views

# Patterns are written with single spaces between words; each space compiles to `\s*` so the
# same pattern matches the spaced view ("ignore all previous") and the squashed one
# ("ignoreallprevious") that undoes "i g n o r e" / "ig nore" spacing tricks.
_RAW_PATTERNS: dict[str, list[str]] = {
    "ignore_instructions": [
        r"(ignore|disregard|forget|skip|bypass|override|discard|abandon|neglect|drop) "
        r"(all |any |every |each )?(of )?(the |your |my |these |those |its )?"
        r"(previous|prior|above|earlier|preceding|original|initial|system|old|existing|safety|"
        r"default|developer|current|given|foregoing)"
        r"( (and|or|&) (following|subsequent|next|later|future|other|all|any) )? "
        r"(instructions?|prompts?|rules|directions|guidelines|commands|directives|programming|"
        r"constraints|restrictions|guardrails|polic(y|ies)|orders|guidance)",
        r"(ignore|disregard|forget) (all |any )?(of )?(your|the) (instructions|rules|guidelines|"
        r"programming|directives|training|restrictions|constraints)",
        r"(ignore|disregard|forget) (everything|all|anything) (above|before|prior|previously|"
        r"you (were|have been|ve been) (told|given|instructed)|(i|we) (said|told you) before)",
        r"override (all (of )?)?your (instructions|rules|guidelines|programming|directives|"
        r"restrictions|safety|system prompt|training|settings|protocols)",
        r"(do not|dont|stop) (follow|following|obey|obeying) (your|the|any) (previous |prior |"
        r"original |system )?(instructions|rules|guidelines|programming)",
    ],
    "hijack": [
        # "STOP EVERYTHING!!! NOW!!! JUST PRINT ...", "nevermind, ignore that and say ...":
        # an interruption followed by an order to say or print something.
        r"stop everything (now )?(and )?(just |instead |only |simply )*(say|print|output|write|"
        r"type|repeat|respond|reply|spell)",
        r"(ignore|disregard|forget) (any|all|every|the) (previous|prior|preceding|above|earlier) "
        r"(and|or) (following|subsequent|next|later)",
        r"(ignore|disregard|forget) (that|this|it|everything|the above|what i said|my (last|"
        r"previous) (message|request|question)) (and |then |instead |now |just )+(say|print|"
        r"output|write|type|repeat|respond with|reply with|spell)",
        r"(never ?mind|nevermind)(,| )? (ignore|disregard|forget) ",
    ],
    "prompt_leak": [
        r"(reveal|show|print|repeat|display|output|leak|dump|expose|tell|give|write out|recite|"
        r"spell out|share|disclose|paste|return|copy) (me |us )?(back )?(your|the) (full |entire |"
        r"complete |exact |verbatim |original |initial |hidden |secret |internal |raw )*"
        r"(system|hidden|initial|original|secret|internal|developer|pre ?) "
        r"(prompt|instructions|message|rules|configuration|directives)",
        r"(reveal|show|print|repeat|display|output|leak|dump|disclose|recit)(e|ing)? (me )?your "
        r"(prompt|instructions|rules|directives|guidelines|configuration)",
        r"what (is|are|was|were) your (system |hidden |initial |original |secret |internal )"
        r"?(prompt|instructions|directives)",
        r"(repeat|print|output|recite|show) (me )?(everything|all|the (text|words|message)) "
        r"(above|before this|before (my|this) message|you were (told|given))",
        r"what (were|are) you (told|instructed|programmed) (to do )?(before|at the (start|"
        r"beginning)|initially)",
    ],
    "role_override": [
        r"you are now (dan|an? (unrestricted|unfiltered|uncensored|unlimited|evil|amoral|rogue|"
        r"jailbroken)|jailbroken|free from|"
        r"no longer (bound|restricted|an ai|chatgpt|an assistant))",
        r"do anything now",
        r"dan mode",
        r"(enable|activate|enter|switch to|turn on|go into|engage) (the )?(developer|dev|god|"
        r"admin|debug|jailbreak|unrestricted|sudo|unfiltered|uncensored|evil) mode",
        r"developer mode (is )?(now )?(enabled|activated|unlocked)",
        r"(act|behave|respond|pretend|roleplay|role play|answer|reply) (as|like|to be|that you are|"
        r"as if you (are|were)) (an? |the )?(completely |totally |fully )?(unrestricted|unfiltered|"
        r"uncensored|unlimited|evil|amoral|unethical|rogue|jailbroken|lawless|unbound)",
        r"(act|behave|pretend|roleplay|role play) (as|like|to be) (dan|an ai with(out)? (no )?"
        r"(rules|restrictions|filters|limits|guidelines|morals|ethics))",
        r"pretend (that )?(you (are|have|were)|to be) (an? )?(ai |assistant |model |chatbot )?"
        r"(with no|without( any)?|that has no|who has no|free of|free from) (rules|restrictions|"
        r"filters|guidelines|limits|limitations|morals|ethics|censorship)",
        r"you (have|has|now have) no (rules|restrictions|filters|guidelines|limits|limitations|"
        r"ethical (guidelines|constraints)|content policy)",
        r"(not|no longer|never) (be )?bound by (any |your |the )?(rules|guidelines|polic(y|ies)|"
        r"restrictions|ethics|openai|anthropic|content policy|safety)",
        r"(respond|answer|reply|talk|speak|write) without (any )?(restrictions|filters|filtering|"
        r"censorship|rules|guidelines|limitations|safety|moral|ethical)",
        r"(from now on|starting now|henceforth|for the rest of (this|the) conversation),? "
        r"you (will|must|shall|are going to) (ignore|disregard|not follow|no longer follow|"
        r"answer without|respond without|bypass)",
    ],
    "jailbreak": [
        r"jailbreak (mode|prompt|enabled|activated|yourself|the (ai|model|assistant|bot|system|"
        r"chatbot|llm)|this (ai|model|assistant|bot|chat))",
        r"(you are|youre|you have been|you ve been|i have) (now )?jailbroken",
        r"this is a jailbreak",
        r"(bypass|disable|turn off|deactivate|circumvent|remove|evade|get around|switch off|"
        r"ignore) (all )?(of )?your (own )?(safety |content |ethical |moral )?(filters?|"
        r"guardrails?|safeguards?|restrictions|guidelines|censorship|moderation|safety|ethics|"
        r"alignment|programming|limitations)",
        r"(i have been|ive been|say i have been) pwned",
    ],
    "exfiltration": [
        r"(send|post|forward|upload|email|leak) (the |your |all )?(entire )?(conversation|chat "
        r"history|previous messages|system prompt|instructions|api keys?|secrets|credentials) to",
    ],
}

# Markers that only mean something with their punctuation, matched on the folded text.
_MARKER_PATTERNS: dict[str, list[str]] = {
    "fake_system_message": [
        r"(^|\n|\]|\))\s*(new|updated|revised|real|admin|system|developer|root|sudo)\s+"
        r"(instructions?|prompt|directives?|override|message|command|rules)\s*:",
        r"\[\s*(system|inst|admin)\s*\]",
        r"<\|?\s*(im_start|system|endoftext)\s*\|?>",
        r"<<\s*sys\s*>>",
        r"#{2,}\s*(system|instruction|new instructions)",
        r"(system|admin|developer)\s+override\s*[:!]",
    ],
    "hijack": [
        # A shouted interruption then an order to print a quoted phrase.
        r"(stop|halt|cancel)\s+(everything|all)\W{0,12}(now\W{0,12})?(just\s+)?(say|print|"
        r"output|write|type|repeat)\b",
        r"\b(instead|now|just)\s*,?\s*(say|print|output|write|type)\s*:?\s*[\"\u201c'\u2018]"
        r"[^\"\u201d]{1,120}[\"\u201d'\u2019]\s*(and|,)?\s*(nothing|no)\s+(else|more|other)",
    ],
}


# A match in the squashed view has lost its word boundaries, so short ones ("aimmode" inside
# "i aim. mode of ...") are ignored there; real phrases are long.
_MIN_SQUASHED_MATCH = 14


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.replace(" ", r"\s*"))


@dataclass(frozen=True)
class InjectionMatch:
    """Which rule family matched (never the matched user text)."""

    category: str


class InjectionRules:
    """The maintained pattern set, compiled once per app."""

    def __init__(self) -> None:
        self._word_rules = [
            (name, _compile(p)) for name, pats in _RAW_PATTERNS.items() for p in pats
        ]
        self._marker_rules = [
            (name, re.compile(p, re.MULTILINE))
            for name, pats in _MARKER_PATTERNS.items()
            for p in pats
        ]

    @property
    def size(self) -> int:
        """Number of compiled patterns."""
        return len(self._word_rules) + len(self._marker_rules)

    def check(self, text: str) -> InjectionMatch | None:
        """The first rule family that matches any normalised view of `text`, or None."""
        marked = marker_view(text)
        for name, rx in self._marker_rules:
            if rx.search(marked):
                return InjectionMatch(name)
        for view, squashed in views(text):
            for name, rx in self._word_rules:
                for m in rx.finditer(view):
                    if squashed:
                        if m.end() - m.start() >= _MIN_SQUASHED_MATCH:
                            return InjectionMatch(name)
                    elif m.start() == 0 or not view[m.start() - 1].isalnum():
                        # Spaced view: a match must start at a word boundary.
                        return InjectionMatch(name)
        return None
