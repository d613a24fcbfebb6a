"""Training-set builders: episode trials -> SFT rows (chat with tools, ReAct text), continual rounds.

The builders turn what exploration, filtering and augmentation kept into exactly what trainers
consume; they never judge quality themselves (that is `filter`'s job), they only skip a trial
that cannot make the requested kind of example, and count why. See docs/training-data.md.
"""
