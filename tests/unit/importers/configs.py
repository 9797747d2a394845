"""Realistic LiteLLM proxy configs and providers lists, as their users write them."""

AZURE_OPENAI_WEIGHTED = """\
# two Azure regions share the load 1:2 by rpm; OpenAI only when both are down
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eastus
      api_base: https://eastus.openai.azure.com/
      api_key: os.environ/AZURE_EASTUS_KEY
      api_version: "2024-08-01-preview"
      rpm: 480
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-westus
      api_base: os.environ/AZURE_WESTUS_BASE
      api_key: os.environ/AZURE_WESTUS_KEY
      rpm: 960
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      order: 2
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_key: os.environ/OPENAI_API_KEY
    model_info: {mode: embedding}
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
  timeout: 30
  cooldown_time: 60
  allowed_fails: 2
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""

FALLBACKS = """\
model_list:
  - model_name: claude-sonnet
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
      api_key: os.environ/ANTHROPIC_API_KEY
    model_info:
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000015
  - model_name: gemini-flash
    litellm_params:
      model: gemini/gemini-1.5-flash
      api_key: os.environ/GEMINI_API_KEY
  - model_name: gpt-4o-mini
    litellm_params:
      model: gpt-4o-mini
  - model_name: local
    litellm_params:
      model: ollama/llama3.2
      api_base: http://localhost:11434
litellm_settings:
  drop_params: true
  num_retries: 3
  request_timeout: 120
  fallbacks:
    - claude-sonnet: ["gpt-4o-mini", "gemini-flash"]
    - gpt-4o-mini: ["local"]
  context_window_fallbacks:
    - gpt-4o-mini: ["claude-sonnet"]
  success_callback: ["langfuse"]
general_settings:
  master_key: sk-1234
  database_url: postgresql://llm:pw@db/litellm
"""

SELF_HOSTED = """\
model_list:
  - model_name: llama-70b
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-70B-Instruct
      api_base: http://10.0.0.5:8000/v1
      weight: 0.7
  - model_name: llama-70b
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-70B-Instruct
      api_base: http://10.0.0.6:8000/v1
      weight: 0.3
  - model_name: "groq/*"
    litellm_params:
      model: "groq/*"
      api_key: os.environ/GROQ_API_KEY
  - model_name: titan
    litellm_params:
      model: bedrock/amazon.titan-text-express-v1
      aws_region_name: us-east-1
router_settings:
  routing_strategy: latency-based-routing
  redis_host: redis
  redis_port: 6379
  model_group_alias: {"llama": "llama-70b"}
environment_variables:
  REDIS_PASSWORD: hunter2
"""

PROVIDERS = """\
providers:
  - name: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    priority: 1
    models: [gpt-4o, gpt-4o-mini]
  - name: azure
    type: azure
    base_url: https://corp.openai.azure.com
    api_key_env: AZURE_OPENAI_KEY
    priority: 2
    models: [gpt-4o]
  - name: anthropic
    base_url: https://api.anthropic.com
    api_key_env: ANTHROPIC_API_KEY
    priority: 1
    models: [claude-3-5-haiku-latest]
  - name: ollama
    base_url: http://127.0.0.1:11434/v1
    priority: 5
    timeout_s: 30
default_model: gpt-4o-mini
"""
