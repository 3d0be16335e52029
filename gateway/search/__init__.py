"""One search, start to answer: the request read once, plan, pipeline, the ES JSON it merges."""
