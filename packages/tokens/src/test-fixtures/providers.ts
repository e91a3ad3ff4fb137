/**
 * Requests, responses and stream events as OpenAI and Anthropic document them (API references
 * for chat completions, the responses API, messages and their streaming), ids shortened. The
 * tests price these exact shapes.
 */

/** POST /v1/chat/completions with two aliases of the output limit (the newer one larger). */
export const openaiChatRequest = {
  model: 'gpt-4.1',
  messages: [
    { role: 'developer', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Hello!' },
  ],
  max_tokens: 100,
  max_completion_tokens: 300,
  stream: true,
  stream_options: { include_usage: true },
}

/** POST /v1/chat/completions with an image part (a data: URL) and no output limit. */
export const openaiVisionRequest = {
  model: 'gpt-4.1',
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this image?' },
        {
          type: 'image_url',
          image_url: { url: `data:image/png;base64,${'iVBORw0KGgo'.repeat(1000)}`, detail: 'low' },
        },
      ],
    },
  ],
}

/** POST /v1/responses. */
export const openaiResponsesRequest = {
  model: 'gpt-4.1',
  instructions: 'Talk like a pirate.',
  input: 'Are semicolons optional in JavaScript?',
  max_output_tokens: 1024,
}

/** POST /v1/messages (Anthropic), a cached system prompt and a tool round trip. */
export const anthropicRequest = {
  model: 'claude-sonnet-4-5',
  max_tokens: 1024,
  system: [
    {
      type: 'text',
      text: 'You are an AI assistant tasked with analyzing literary works.',
      cache_control: { type: 'ephemeral' },
    },
  ],
  tools: [
    {
      name: 'get_weather',
      description: 'Get the current weather in a given location',
      input_schema: {
        type: 'object',
        properties: { location: { type: 'string', description: 'City and state' } },
        required: ['location'],
      },
    },
  ],
  messages: [
    { role: 'user', content: 'What is the weather like in San Francisco?' },
    {
      role: 'assistant',
      content: [
        {
          type: 'tool_use',
          id: 'toolu_01A09q90qw90lq917835lq9',
          name: 'get_weather',
          input: { location: 'San Francisco, CA' },
        },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_01A09q90qw90lq917835lq9', content: '15 C' },
      ],
    },
  ],
}

/** A chat.completion with cached prompt tokens and reasoning tokens. */
export const openaiChatCompletion = {
  id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
  object: 'chat.completion',
  created: 1741570283,
  model: 'gpt-4.1-2025-04-14',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'Hello! How can I help you today?', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: {
    prompt_tokens: 2006,
    completion_tokens: 300,
    total_tokens: 2306,
    prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 192,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  },
  service_tier: 'default',
  system_fingerprint: 'fp_fc9f1d7035',
}

/** The responses API's usage object. */
export const openaiResponsesUsage = {
  input_tokens: 36,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: 87,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 123,
}

/** An Anthropic message's usage that wrote the system prompt to the cache. */
export const anthropicUsage = {
  input_tokens: 21,
  cache_creation_input_tokens: 188086,
  cache_read_input_tokens: 0,
  cache_creation: { ephemeral_5m_input_tokens: 188086, ephemeral_1h_input_tokens: 0 },
  output_tokens: 393,
  service_tier: 'standard',
}

/** A streamed chat completion with `stream_options.include_usage`, as SSE `data:` payloads. */
export const openaiChatStream = [
  '{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4.1","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}',
  '{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4.1","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}',
  '{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4.1","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}',
  '{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4.1","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}',
  '[DONE]',
]

/** The same stream asked without `include_usage`: no chunk carries usage. */
export const openaiChatStreamWithoutUsage = openaiChatStream.slice(0, 3)

/** A streamed Anthropic message: usage in `message_start`, running totals in `message_delta`. */
export const anthropicStream = [
  {
    type: 'message_start',
    message: {
      id: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY',
      type: 'message',
      role: 'assistant',
      content: [],
      model: 'claude-sonnet-4-5',
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 472,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 2048,
        output_tokens: 2,
      },
    },
  },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '!' } },
  { type: 'content_block_stop', index: 0 },
  {
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: 15 },
  },
  { type: 'message_stop' },
]

/** A streamed response of the responses API: usage only in `response.completed`. */
export const openaiResponsesStream = [
  {
    type: 'response.created',
    sequence_number: 0,
    response: { id: 'resp_67c9fdcecf488190bdd9a0409de3a1ec', status: 'in_progress', usage: null },
  },
  {
    type: 'response.output_text.delta',
    sequence_number: 4,
    item_id: 'msg_67c9fdcf37fc8190ba82116e33fb28c5',
    output_index: 0,
    content_index: 0,
    delta: 'Arr',
  },
  {
    type: 'response.completed',
    sequence_number: 9,
    response: {
      id: 'resp_67c9fdcecf488190bdd9a0409de3a1ec',
      status: 'completed',
      usage: {
        input_tokens: 37,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 11,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 48,
      },
    },
  },
]
