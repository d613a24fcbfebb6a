"""Dataset card templates, release building and publishing to the Hugging Face Hub."""
