"""Settings from a ComfyUI graph (API-format prompt, or the UI-format workflow): the first-pass
sampler node, traced back to its prompts, model and latent."""

from __future__ import annotations

import json
from typing import Any

from studio.engine.addons.tags import LoraTag
from studio.engine.metadata.comfyui_addons import (
    LORA_LOADERS,
    addon_refs_of,
    embeddings_by_name,
    lora_tag,
    vae_loader,
    with_lora_tags,
)
from studio.engine.metadata.comfyui_names import comfy_sampler, describe_unavailable
from studio.engine.metadata.result import ReadResult
from studio.engine.request import GenerationRequest, ScheduleOptions

_EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyLatentImageSD3")
_SCALAR_INPUTS = ("value", "seed", "noise_seed", "text", "string", "int", "float", "number")
# widget order of the UI-format workflow for the nodes we read (None: a UI-only widget)
_WIDGETS: dict[str, list[str | None]] = {
    "KSampler": ["seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"],
    "KSamplerAdvanced": [
        "add_noise",
        "noise_seed",
        None,
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ],
    "CLIPTextEncode": ["text"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "LoraLoader": ["lora_name", "strength_model", "strength_clip"],
    "ModelSamplingDiscrete": ["sampling", "zsnr"],
    "VAEEncodeForInpaint": ["grow_mask_by"],
}


def _workflow_to_graph(workflow: Any) -> dict[str, dict[str, Any]]:
    """The UI-format workflow (nodes + links) turned into the API-format prompt graph."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise ValueError("the workflow has no node list")
    links: dict[Any, list[Any]] = {}
    raw_links = workflow.get("links")
    for link in raw_links if isinstance(raw_links, list) else []:
        if isinstance(link, list) and len(link) >= 5 and isinstance(link[0], int):
            links[link[0]] = [str(link[1]), link[2]]
    graph: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            continue
        inputs: dict[str, Any] = {}
        widgets = node.get("widgets_values")
        names = _WIDGETS.get(node["type"], [])
        if isinstance(widgets, dict):
            inputs.update(widgets)
        elif isinstance(widgets, list):
            inputs.update({n: v for n, v in zip(names, widgets, strict=False) if n})
        node_inputs = node.get("inputs")
        for inp in node_inputs if isinstance(node_inputs, list) else []:
            if isinstance(inp, dict) and isinstance(inp.get("link"), int) and inp["link"] in links:
                inputs[str(inp.get("name"))] = links[inp["link"]]
        graph[str(node.get("id"))] = {"class_type": node["type"], "inputs": inputs}
    return graph


class _Comfy:
    def __init__(self, graph: dict[str, Any]) -> None:
        self.graph = {
            str(k): v
            for k, v in graph.items()
            if isinstance(v, dict)
            and isinstance(v.get("class_type"), str)
            and isinstance(v.get("inputs"), dict)
        }
        self.unmapped: dict[str, str] = {}
        self.warnings: list[str] = []
        self.loras: list[LoraTag] = []

    def node(self, value: Any) -> tuple[str, dict[str, Any]] | None:
        if isinstance(value, list) and len(value) == 2 and str(value[0]) in self.graph:
            nid = str(value[0])
            return nid, self.graph[nid]
        return None

    def scalar(self, value: Any, depth: int = 0) -> Any:
        """A literal input, or the value of a primitive node it is wired to."""
        linked = self.node(value)
        if linked is None:
            # only plain values count; anything else is junk, not a setting
            return value if isinstance(value, (str, int, float)) else None
        if depth > 8:
            return None
        inputs = linked[1]["inputs"]
        for key in _SCALAR_INPUTS:
            if key in inputs:
                return self.scalar(inputs[key], depth + 1)
        return None

    def text(self, value: Any, role: str, depth: int = 0) -> str | None:
        linked = self.node(value)
        if linked is None or depth > 20:
            return None
        nid, node = linked
        inputs = node["inputs"]
        for key in ("text", "text_g"):
            if key in inputs:
                text = self.scalar(inputs[key])
                if key == "text_g" and self.scalar(inputs.get("text_l")) not in (None, text):
                    self.warnings.append(
                        f"The {role} prompt has separate SDXL text_l; text_g used."
                    )
                return text if isinstance(text, str) else None
        for key in (role, "conditioning", "conditioning_1", "conditioning_to"):
            if key in inputs:
                if key in ("conditioning_1", "conditioning_to"):
                    self.warnings.append(
                        f"The {role} prompt combines several texts; only the first is read."
                    )
                return self.text(inputs[key], role, depth + 1)
        return None

    def model(self, value: Any, schedule: dict[str, Any], depth: int = 0) -> str | None:
        linked = self.node(value)
        if linked is None or depth > 20:
            return None
        nid, node = linked
        kind, inputs = node["class_type"], node["inputs"]
        for key in ("ckpt_name", "unet_name", "model_name"):
            if isinstance(inputs.get(key), str):
                return inputs[key]
        if kind in LORA_LOADERS and (tag := lora_tag(kind, inputs, self.scalar)) is not None:
            self.loras.insert(0, tag)  # walked from the sampler back: the first loader last
        elif kind.startswith("LoraLoader"):
            self.unmapped[f"LoRA {inputs.get('lora_name', nid)}"] = str(
                inputs.get("strength_model", "")
            )
        elif kind == "ModelSamplingDiscrete":
            sampling = self.scalar(inputs.get("sampling"))
            prediction = {"eps": "epsilon", "v_prediction": "v_prediction", "x0": "sample"}
            if sampling in prediction:
                schedule["prediction_type"] = prediction[sampling]
            elif sampling is not None:
                self.unmapped["ModelSamplingDiscrete sampling"] = str(sampling)
            if self.scalar(inputs.get("zsnr")) is True:
                schedule["zero_snr"] = True
        elif "model" in inputs:
            self.unmapped[f"node {nid}"] = f"{kind} (in the model chain, not applied)"
        return self.model(inputs.get("model"), schedule, depth + 1)


def _step_range(c: _Comfy, nid: str) -> tuple[int, int | None, int | None]:
    """(first step, last step or None for the end, total steps or None) of a sampler node."""
    inputs = c.graph[nid]["inputs"]
    steps = c.scalar(inputs.get("steps"))
    total = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    if c.graph[nid]["class_type"] != "KSamplerAdvanced":
        return 0, None, total
    start = c.scalar(inputs.get("start_at_step"))
    end = c.scalar(inputs.get("end_at_step"))
    first = start if isinstance(start, int) and start > 0 else 0
    last = end if isinstance(end, int) and total is not None and end < total else None
    return first, last, total


def _pass_text(c: _Comfy, nid: str) -> str:
    node = c.graph[nid]
    inputs = node["inputs"]
    first, last, total = _step_range(c, nid)
    end = last if last is not None else total
    parts = [f"{node['class_type']} steps {first}-{end} of {total}"]
    for key in ("sampler_name", "scheduler", "cfg", "denoise", "add_noise"):
        value = c.scalar(inputs.get(key))
        if value is not None:
            parts.append(f"{key} {value}")
    model = c.model(inputs.get("model"), {})
    if model is not None:
        parts.append(f"model {model}")
    return ", ".join(parts)


def _read_comfyui(prompt_text: str | None, workflow_text: str | None) -> ReadResult:
    if prompt_text:
        graph = json.loads(prompt_text)
        if not isinstance(graph, dict):
            raise ValueError("the ComfyUI prompt is not a JSON object")
    else:
        graph = _workflow_to_graph(json.loads(workflow_text or "null"))
    c = _Comfy(graph)
    samplers = [
        nid for nid, n in c.graph.items() if n["class_type"] in ("KSampler", "KSamplerAdvanced")
    ]
    if not samplers:
        return ReadResult(
            request=None,
            source="comfyui",
            warnings=["The ComfyUI graph has no KSampler node; no settings were read."],
        )

    def first_pass(nid: str) -> bool:
        latent = c.node(c.graph[nid]["inputs"].get("latent_image"))
        return latent is not None and latent[1]["class_type"] in _EMPTY_LATENTS

    def order(nid: str) -> tuple[bool, int, str]:
        return (not first_pass(nid), int(nid) if nid.isdigit() else 1 << 62, nid)

    nid = min(samplers, key=order)
    node = c.graph[nid]
    kind, inputs = node["class_type"], node["inputs"]
    passes = sorted(samplers, key=lambda n: (_step_range(c, n)[0], order(n)))
    partial = kind == "KSamplerAdvanced" and _step_range(c, nid)[1:] != (None, None)
    if len(samplers) > 1 or partial:
        for i, pid in enumerate(passes, 1):
            c.unmapped[f"pass {i} (node {pid})"] = _pass_text(c, pid)
        c.warnings.append(
            f"The graph samples in {len(samplers)} pass(es) over step ranges; only node {nid}'s "
            "settings are used, over all its steps: the other passes are listed as not mapped."
        )
    req: dict[str, Any] = {"rng": "CPU"}  # ComfyUI draws its noise on the CPU
    schedule: dict[str, Any] = {}
    substituted: list[str] = []

    def put(key: str, source: str, cast: type) -> None:
        value = c.scalar(inputs.get(source))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is not None:
                c.unmapped[source] = str(value)
            return
        req[key] = cast(value)

    put("seed", "noise_seed" if kind == "KSamplerAdvanced" else "seed", int)
    put("steps", "steps", int)
    put("cfg_scale", "cfg", float)

    name = c.scalar(inputs.get("sampler_name"))
    scheduler = c.scalar(inputs.get("scheduler"))
    resolved, why = comfy_sampler(name, scheduler) if isinstance(name, str) else (None, None)
    if resolved is None:
        c.unmapped["sampler_name"] = describe_unavailable(str(name))
        if why is None and scheduler is not None:
            c.unmapped["scheduler"] = str(scheduler)  # goes with the sampler we cannot run
        c.warnings.append(f"ComfyUI sampler {name!r} is not available; the default is used.")
        substituted.append("sampler")
    else:
        req["sampler"], schedule["karras"] = resolved
    if why is not None:
        c.unmapped["scheduler"] = f"{scheduler} ({why})"
        c.warnings.append(f"ComfyUI scheduler {scheduler!r}: {why}; the sampler's own is used.")

    for role, key in (("positive", "prompt"), ("negative", "negative_prompt")):
        text = c.text(inputs.get(role), role)
        if text is None:
            c.warnings.append(f"The {role} prompt could not be traced to a text node.")
        else:
            req[key] = text

    model = c.model(inputs.get("model"), schedule)
    if model is None:
        c.warnings.append("No checkpoint loader found; the default model is used.")
        substituted.append("model")
    else:
        req["model"] = model

    # add-ons: LoRA tags go into the prompt, as A1111 writes them
    req["prompt"] = with_lora_tags(req.get("prompt", ""), c.loras)
    embeddings: list[str] = []
    for key in ("prompt", "negative_prompt"):
        if key in req:
            req[key], names = embeddings_by_name(req[key])
            embeddings += names
    vae = vae_loader(c.graph, c.scalar)
    if vae:
        req["vae"] = vae

    latent = c.node(inputs.get("latent_image"))
    latent_kind = latent[1]["class_type"] if latent else None
    denoise = c.scalar(inputs.get("denoise", 1.0))
    if latent_kind in _EMPTY_LATENTS:
        assert latent is not None
        lin = latent[1]["inputs"]
        for key in ("width", "height", "batch_size"):
            value = c.scalar(lin.get(key))
            if isinstance(value, int) and not isinstance(value, bool):
                req[key] = value
        if isinstance(denoise, (int, float)) and denoise != 1:
            c.unmapped["denoise"] = str(denoise)
    elif latent_kind in ("VAEEncode", "VAEEncodeForInpaint", "SetLatentNoiseMask"):
        req["mode"] = "img2img" if latent_kind == "VAEEncode" else "inpaint"
        if isinstance(denoise, (int, float)) and 0 < denoise <= 1:
            req["strength"] = float(denoise)
        c.warnings.append("The input image is not stored in the graph; supply it to regenerate.")
        c.warnings.append("The image size comes from the input image; the default is shown.")
        substituted += ["width", "height"]
    else:
        c.warnings.append(f"The latent input ({latent_kind}) is not understood; size defaulted.")
        substituted += ["width", "height"]
    if kind == "KSamplerAdvanced":
        value = c.scalar(inputs.get("add_noise"))
        if value not in (None, "enable"):
            c.unmapped["add_noise"] = str(value)

    request = GenerationRequest(**req, schedule=ScheduleOptions(**schedule))
    return ReadResult(
        request=request,
        source="comfyui",
        unmapped=c.unmapped,
        warnings=c.warnings,
        image_seed=request.seed,
        model_name=model,
        substituted=substituted,
        addons=addon_refs_of(c.loras, embeddings, vae),
    )
