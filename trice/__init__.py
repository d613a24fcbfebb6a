"""TRICE (Qiao et al. 2023): preference data from execution feedback.

questions.py (what is asked, with its gold), sampler.py (K candidates per question, executed),
scoring.py (each candidate against the gold), ranking.py (candidates ranked and paired), rank.py
(the `rank` stage), cli.py (the command). The rows themselves are built in builders/
(chat rows, preference rows, rendered preference text). See docs/trice.md.
"""
