"""Fixed English sentences that tests and benchmarks speak, transcribe and score."""

from __future__ import annotations

# One sentence of a typical spoken request.
REQUEST = "Please send the quarterly report to my office before noon tomorrow."
# Ten short, phonetically varied sentences: a long clip, or a paragraph to synthesise.
SENTENCES = [
    "The weather is sunny and warm today.",
    "Please send the report to my office before noon.",
    "She bought three apples and a loaf of bread.",
    "Our train leaves the station at seven in the evening.",
    "He plays the guitar in a small band on weekends.",
    "Turn left at the next corner and walk two blocks.",
    "The museum opens at nine and closes at five.",
    "We should water the plants before we go away.",
    "My sister is learning to speak Spanish this year.",
    "The children painted a large map of the world.",
]
