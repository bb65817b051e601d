"""LangChain tools: the doors other code (the search graph, other agents) uses into nasloop."""
