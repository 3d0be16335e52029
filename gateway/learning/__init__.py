"""Learning from the users: clicks → judgments → a learned second stage → registry → canary.

::

    clicks.py      impressions + clicks → sessions; COEC and the position-based model (PBM)
                   whose examination curve comes from randomized / interleaved traffic
    judgments.py   labels per (query, document); TREC / BEIR qrels in and out; time split
    ubi.py         OpenSearch User Behavior Insights (UBI 1.3) queries and events, in and out
    features.py    what the gateway knows about each hit at serving time, as a row of numbers
    ranker.py      the learned second stage (LightGBM lambdarank or a linear pairwise model)
    registry.py    a directory of trained rankers: name, revision, data window, metrics
    significance.py  nDCG@10 per query and a paired randomization test
    canary.py      shadow → interleaving → promote / roll back, by a pre-declared stop rule
    finetune.py    judgments → ranked lists → CrossEncoderTrainer → fine-tuned weights
    finetune_checks.py  those weights → the gateway's ONNX layout; agreement, batch invariance

Training itself (logs → judgments → model → registry) is an offline job that reads the
experiments' event log: ``gateway.offline.train`` (``rerank-gateway train``), and
``gateway.offline.fine_tune`` (``rerank-gateway fine-tune``). ``relevance``
and ``profiles`` import ``features`` / ``ranker`` / ``registry`` to serve a trained model.
"""
