"""A task written the TRL way (verbatim prompts, an `answer` column, a reward function): see README."""
