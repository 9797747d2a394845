"""Provider adapters and transports, chosen by a backend's `type`."""

from proxy.config import Backend, Timeouts
from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.azure import AzureAdapter
from proxy.providers.base import Adapter
from proxy.providers.gemini import GeminiAdapter
from proxy.providers.http_template import HttpTemplateAdapter
from proxy.providers.huggingface import HuggingFaceAdapter
from proxy.providers.mock import MockAdapter, MockTransport
from proxy.providers.ollama import OllamaAdapter
from proxy.providers.openai import OpenAIAdapter
from proxy.providers.transport import HttpTransport, Transport


def adapter(backend: Backend) -> Adapter:
    match backend.type:
        case "openai":
            return OpenAIAdapter(backend)
        case "azure":
            return AzureAdapter(backend)
        case "anthropic":
            return AnthropicAdapter(backend)
        case "gemini":
            return GeminiAdapter(backend)
        case "mock":
            return MockAdapter(backend)
        case "ollama":
            return OllamaAdapter(backend)
        case "http":
            return HttpTemplateAdapter(backend)
        case "huggingface":
            return HuggingFaceAdapter(backend)


def transport(backend: Backend, timeouts: Timeouts) -> Transport:
    if backend.type == "mock":
        return MockTransport(backend)
    return HttpTransport(backend, timeouts)
