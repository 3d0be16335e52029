"""The search pipeline, in the order a ``_search`` goes through it.

::

    request     the request read once (params, opt-in, body, ``ext.rerank``, deadline)
    context     one ``SearchContext`` per search: plan, profile, budget, timings
    pipeline    ``SearchFlow``: the stages in order; ``msearch`` runs them per sub-search
    trees       a ``retriever`` body (or a hybrid profile) run by the gateway
    decide      reranked or not (and why), the plan and profile
    plan        ``Plan`` from the body; the widened body sent upstream
    rank        score the window, merge the page (``search_after`` pages too)
    merge       the client's page out of the upstream answer
    result      the answer: ``SearchResult``, ``filter_path``, ``?pretty``
    hooks       what an experiment arm implements (the pipeline imports no experiment)
    reasons     what each ``X-Rerank-Reason`` means (the docs list is written from it)
    cursor, filter_path, mappings: search JSON read and written (body JSON: ``gateway.es``)
"""
