"""The text both GGUF benches run (gguf_run.py, gguf_llamacpp.py): 32 tokens of SmolLM2's vocabulary."""

TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type with an oil-based ink and a screw press to print the first books in "
    "Europe"
)
