"""Reading what an LLM wrote: the Generator's module, its edit blocks, and the Improver's advice,
cleaned. Total functions over text: nothing read here is ever executed."""
