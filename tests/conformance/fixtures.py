"""The tools, resources and prompts the official conformance suite's server scenarios call by name.

Loaded with `mcp-platform serve --no-auth --tools-dir tests/conformance`. Expected strings come from the suite
(`@modelcontextprotocol/conformance@0.2.0-alpha.12`); each fixture is written with the public API a user would use.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import anyio
from pydantic import Field

from mcp_platform import ToolContext, ToolResult, prompt, resource, tool
from mcp_platform.prompts import Prompts, spec_of_prompt
from mcp_platform.tool_registry import Registry

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
WAV = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA"
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _text(text: str) -> ToolResult:
    return ToolResult.text(text)


# -- plain content ---------------------------------------------------------------------------------------------


@tool(read_only=True, title="Simple text")
async def test_simple_text() -> ToolResult:
    """Returns a simple text response."""
    return _text("This is a simple text response for testing.")


@tool(read_only=True, title="Image content")
async def test_image_content() -> ToolResult:
    """Returns a PNG image."""
    return ToolResult(content=[{"type": "image", "data": PNG, "mimeType": "image/png"}])


@tool(read_only=True, title="Audio content")
async def test_audio_content() -> ToolResult:
    """Returns a WAV clip."""
    return ToolResult(content=[{"type": "audio", "data": WAV, "mimeType": "audio/wav"}])


@tool(read_only=True, title="Embedded resource")
async def test_embedded_resource() -> ToolResult:
    """Returns an embedded text resource."""
    return ToolResult(content=[{"type": "resource", "resource": {
        "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}])


@tool(read_only=True, title="Mixed content")
async def test_multiple_content_types() -> ToolResult:
    """Returns text, an image and a resource."""
    return ToolResult(content=[
        {"type": "text", "text": "Multiple content types test:"},
        {"type": "image", "data": PNG, "mimeType": "image/png"},
        {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                                          "text": json.dumps({"test": "data", "value": 123})}},
    ])


@tool(read_only=True, title="Error handling")
async def test_error_handling() -> ToolResult:
    """Always returns a tool error."""
    return ToolResult(content=[{"type": "text", "text": "This tool intentionally returns an error for testing"}],
                      is_error=True)


# -- notifications ---------------------------------------------------------------------------------------------


@tool(read_only=True, title="Progress")
async def test_tool_with_progress(ctx: ToolContext) -> ToolResult:
    """Reports progress 0, 50, 100 of 100."""
    for value in (0, 50, 100):
        await ctx.report_progress(value, 100)
        if value < 100:
            await anyio.sleep(0.05)
    return _text("Progress complete")


@tool(read_only=True, title="Logging")
async def test_tool_with_logging(ctx: ToolContext) -> ToolResult:
    """Logs three info messages."""
    for i, message in enumerate(["Tool execution started", "Tool processing data", "Tool execution completed"]):
        await ctx.log("info", message)
        if i < 2:
            await anyio.sleep(0.05)
    return _text("Tool with logging executed successfully")


@tool(read_only=True, title="Logging (2026)")
async def test_logging_tool(ctx: ToolContext) -> ToolResult:
    """Logs only when the request asked for a log level."""
    await ctx.log("info", "test_logging_tool ran")
    return _text("Logging tool done")


# -- asking the client (handshake: server->client requests; 2026: input_required rounds) -------------------------


@tool(read_only=True, title="Sampling")
async def test_sampling(ctx: ToolContext, prompt: str) -> ToolResult:
    """Asks the client's model to answer `prompt`."""
    answer = await ctx.sample(prompt, max_tokens=100)
    content = answer.get("content", {})
    return _text(f"LLM response: {content.get('text', '') if isinstance(content, dict) else content}")


@tool(read_only=True, title="Elicitation")
async def test_elicitation(ctx: ToolContext, message: str) -> ToolResult:
    """Asks the user for a username and email."""
    schema = {"type": "object", "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"}}, "required": ["username", "email"]}
    answer = await ctx.elicit(message, schema)
    return _text(f"User response: action={answer.get('action')}, content={json.dumps(answer.get('content', {}))}")


@tool(read_only=True, title="Elicitation defaults (SEP-1034)")
async def test_elicitation_sep1034_defaults(ctx: ToolContext) -> ToolResult:
    """Elicits fields that carry default values."""
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True}}}
    answer = await ctx.elicit("Please review your profile", schema)
    return _text(f"Elicitation completed: action={answer.get('action')}, "
                 f"content={json.dumps(answer.get('content', {}))}")


@tool(read_only=True, title="Elicitation enums (SEP-1330)")
async def test_elicitation_sep1330_enums(ctx: ToolContext) -> ToolResult:
    """Elicits every enum form."""
    titled = [{"const": f"value{i}", "title": t} for i, t in enumerate(["First Option", "Second Option",
                                                                         "Third Option"], 1)]
    choices = [{"const": f"value{i}", "title": t} for i, t in enumerate(["First Choice", "Second Choice",
                                                                          "Third Choice"], 1)]
    schema = {"type": "object", "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": titled},
        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                       "enumNames": ["Option One", "Option Two", "Option Three"]},
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {"type": "array", "items": {"anyOf": choices}}}}
    answer = await ctx.elicit("Pick options", schema)
    return _text(f"Elicitation completed: action={answer.get('action')}, "
                 f"content={json.dumps(answer.get('content', {}))}")


@tool(read_only=True, title="Needs sampling")
async def test_missing_capability(ctx: ToolContext) -> ToolResult:
    """Needs the client's sampling capability."""
    answer = await ctx.sample("Say hello", max_tokens=20)
    return _text(f"Sampled: {answer.get('content')}")


@tool(read_only=True, title="Streaming elicitation")
async def test_streaming_elicitation(ctx: ToolContext) -> ToolResult:
    """Asks for a name (an input round at 2026-07-28)."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    return _text(f"Hello, {answer.get('content', {}).get('name')}!")


@tool(read_only=True, title="Input required: elicitation")
async def test_input_required_result_elicitation(ctx: ToolContext) -> ToolResult:
    """Asks for the user's name."""
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    return _text(f"Hello, {answer.get('content', {}).get('name')}!")


@tool(read_only=True, title="Input required: sampling")
async def test_input_required_result_sampling(ctx: ToolContext) -> ToolResult:
    """Asks the client's model a question."""
    answer = await ctx.sample("What is the capital of France?", max_tokens=100, key="capital_question")
    return _text(f"Model said: {answer.get('content', {}).get('text')}")


@tool(read_only=True, title="Input required: roots")
async def test_input_required_result_list_roots(ctx: ToolContext) -> ToolResult:
    """Asks for the client's roots."""
    roots = await ctx.list_roots(key="client_roots")
    return _text("Roots: " + ", ".join(str(r.get("uri")) for r in roots))


@tool(read_only=True, title="Input required: request state")
async def test_input_required_result_request_state(ctx: ToolContext) -> ToolResult:
    """Asks for confirmation, keeping state across the round."""
    ctx.state.setdefault("started", "state-ok")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    await ctx.elicit("Please confirm", schema, key="confirm")
    return _text(f"Confirmed: {ctx.state['started']}")


@tool(read_only=True, title="Input required: several inputs")
async def test_input_required_result_multiple_inputs(ctx: ToolContext) -> ToolResult:
    """Asks for a name, a greeting and the roots at once."""
    answers = await ctx.ask({
        "user_name": {"method": "elicitation/create",
                      "params": {"message": "What is your name?", "requestedSchema": NAME_SCHEMA}},
        "greeting": {"method": "sampling/createMessage", "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": "Generate a greeting"}}],
            "maxTokens": 50}},
        "client_roots": {"method": "roots/list", "params": {}},
    })
    return _text(f"Got {', '.join(sorted(answers))}")


@tool(read_only=True, title="Input required: two rounds")
async def test_input_required_result_multi_round(ctx: ToolContext) -> ToolResult:
    """Asks for a name, then a colour."""
    name = await ctx.elicit("Step 1: What is your name?", NAME_SCHEMA, key="step1")
    color_schema = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
    color = await ctx.elicit("Step 2: What is your favorite color?", color_schema, key="step2")
    return _text(f"{name.get('content', {}).get('name')} likes {color.get('content', {}).get('color')}")


@tool(read_only=True, title="Input required: tamper check")
async def test_input_required_result_tampered_state(ctx: ToolContext) -> ToolResult:
    """Asks for confirmation; a tampered request state is refused."""
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    await ctx.elicit("Please confirm", schema, key="confirm")
    return _text("Confirmed")


@tool(read_only=True, title="Input required: capabilities")
async def test_input_required_result_capabilities(ctx: ToolContext) -> ToolResult:
    """Asks only for what the client declared it supports."""
    if ctx.client_supports("elicitation"):
        await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    elif ctx.client_supports("sampling"):
        await ctx.sample("Say hello", max_tokens=20, key="hello")
    else:
        await ctx.list_roots()
    return _text("Done")


@tool(read_only=True, title="Header-mirrored argument")
async def test_x_mcp_header(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> ToolResult:
    """Echoes a region that clients mirror in the Mcp-Param-Region header (SEP-2243)."""
    return _text(f"region={region}")


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
    "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                          "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                   "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                   "phone": {"type": "string"}, "email": {"type": "string"}},
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]}, "else": {"required": ["email"]},
    "additionalProperties": False,
}


@tool(read_only=True, title="JSON Schema 2020-12", input_schema=JSON_SCHEMA_2020_12,
      description="Tool with JSON Schema 2020-12 features")
async def json_schema_2020_12_tool(name: str | None = None, address: dict[str, str] | None = None,
                                   contactMethod: str | None = None, phone: str | None = None,  # noqa: N803
                                   email: str | None = None) -> ToolResult:
    return _text(f"contact {name} by {contactMethod}")


# -- list changes (2026-07-28 subscriptions/listen) -------------------------------------------------------------


@tool(read_only=True, title="Dynamic tool")
async def test_dynamic_tool() -> ToolResult:
    """Added and removed by test_trigger_tool_change."""
    return _text("dynamic")


@tool(read_only=False, destructive=False, idempotent=False, scope="read", title="Trigger a tool-list change")
async def test_trigger_tool_change(ctx: ToolContext) -> ToolResult:
    """Adds or removes test_dynamic_tool, so listeners receive notifications/tools/list_changed."""
    registry = ctx.backend(Registry)
    if registry.get("test_dynamic_tool") is None:
        registry.add(test_dynamic_tool)
    else:
        registry.remove("test_dynamic_tool")
    await registry.changed()
    return _text("tool list changed")


@tool(read_only=False, destructive=False, idempotent=False, scope="read", title="Trigger a prompt-list change")
async def test_trigger_prompt_change(ctx: ToolContext) -> ToolResult:
    """Adds or removes a prompt, so listeners receive notifications/prompts/list_changed."""
    prompts = ctx.backend(Prompts)
    spec = spec_of_prompt(test_simple_prompt)
    assert spec is not None
    dynamic = dataclasses.replace(spec, name="test_dynamic_prompt")
    if prompts.get("test_dynamic_prompt") is None:
        prompts.add(dynamic)
    else:
        prompts.replace([p for p in prompts.all() if p.name != "test_dynamic_prompt"])
    await ctx.list_changed("prompts")
    return _text("prompt list changed")


# -- resources -----------------------------------------------------------------------------------------------------


@resource("test://static-text", name="static-text", mime_type="text/plain", description="A static text resource")
def static_text() -> str:
    return "This is the content of the static text resource."


@resource("test://static-binary", name="static-binary", mime_type="image/png", description="A PNG image")
def static_binary() -> bytes:
    import base64

    return base64.b64decode(PNG)


@resource("test://watched-resource", name="watched-resource", mime_type="text/plain",
          description="A resource clients subscribe to")
def watched_resource() -> str:
    return "Watched resource content."


@resource("test://template/{id}/data", name="template-data", mime_type="application/json",
          description="Data for an id")
def template_data(id: str) -> str:  # noqa: A002 - the template variable's name
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


# -- prompts -------------------------------------------------------------------------------------------------------


@prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


def _suggest(prefix: str) -> list[str]:
    return [v for v in ("test", "testValue1", "testing", "other") if v.startswith(prefix)]


@prompt(description="A prompt with two required arguments", completions={"arg1": _suggest, "arg2": _suggest})
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with arguments.

    Args:
        arg1: First test argument
        arg2: Second test argument
    """
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@prompt(description="A prompt with an embedded resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:  # noqa: N803 - the suite's name
    return [
        {"role": "user", "content": {"type": "resource", "resource": {
            "uri": resourceUri, "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
        {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
    ]


@prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
        {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
    ]


@prompt(description="A prompt that first asks the user for context")
async def test_input_required_result_prompt(ctx: ToolContext) -> str:
    schema = {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}
    answer = await ctx.elicit("What context should the prompt use?", schema, key="user_context")
    return f"Use this context: {answer.get('content', {}).get('context')}"
