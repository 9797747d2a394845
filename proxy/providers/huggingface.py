"""HuggingFace: the OpenAI-compatible Inference Providers router
(`https://router.huggingface.co/v1`, the default base URL) and self-hosted TGI (chat) / TEI
(embeddings) endpoints, which speak the same wire under their own `/v1`. The token comes
from `api_key` or `HF_TOKEN` (read by the config), sent as `Authorization: Bearer`.

Nothing differs from `openai` on the wire; the preset is the default URL and token.
"""

from proxy.providers.openai import OpenAIAdapter


class HuggingFaceAdapter(OpenAIAdapter):
    pass
