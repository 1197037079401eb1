"""A1111's prompt language: emphasis, BREAK, chunks, editing, alternation, AND; and encoding."""
