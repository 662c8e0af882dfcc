"""`make bench`: docqa's speed and memory beside the raw model and FAISS calls beneath it."""
