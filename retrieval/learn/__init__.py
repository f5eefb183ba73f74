"""Learning from real questions: the operator's loop from "unanswered" to "answered" (issue 15).

`inbox` groups what went wrong by meaning; `files` writes an action as a knowledge file (knowledge/learned/,
or a draft in knowledge/drafts/ for a person to complete); `effect` measures an action on a copy of the
knowledge before it is saved; `live` switches the serving assistant to the new index once it is built.
"""
