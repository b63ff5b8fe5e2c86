-- planbound's checkpoints live apart from the LangGraph server's own tables.
CREATE DATABASE planbound;
