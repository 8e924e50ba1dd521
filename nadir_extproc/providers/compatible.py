"""OpenAI-compatible providers: one entry each (see ``docs/adding-a-provider.md``).

A provider that speaks OpenAI Chat Completions with OpenAI's usage rule, error shape and bearer
key needs nothing but an entry here: its id (also its Envoy cluster / route-metadata value),
its API hosts, and its genai-prices catalogue id and ``gen_ai.provider.name`` when they differ
from the id.
"""

from nadir_extproc.providers.base import Provider, openai_compatible

ENTRIES: tuple[Provider, ...] = ()
