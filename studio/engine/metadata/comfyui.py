"""Settings from a ComfyUI graph (API-format prompt, or the UI-format workflow): the first-pass
sampler node, traced back to its prompts, model and latent."""

from __future__ import annotations

import json
from typing import Any

from studio.engine.metadata.result import ReadResult
from studio.engine.metadata.sampler_names import _resolve_sampler
from studio.engine.request import GenerationRequest, ScheduleOptions

# ComfyUI sampler_name -> our base name; scheduler -> Karras use
_COMFY_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "lms": "LMS",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "ddim": "DDIM",
    "ddpm": "DDPM",
    "uni_pc": "UniPC",
    "uni_pc_bh2": "UniPC",
    "lcm": "LCM",
}
_COMFY_SCHEDULERS = {"karras": True, "normal": False, "simple": False}

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
        if kind.startswith("LoraLoader"):
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
    if len(samplers) > 1:
        c.warnings.append(
            f"The graph has {len(samplers)} sampler nodes; node {nid} was read, the rest ignored."
        )
    req: dict[str, Any] = {}
    schedule: dict[str, Any] = {}

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
    karras = _COMFY_SCHEDULERS.get(scheduler) if isinstance(scheduler, str) else None
    if scheduler is not None and scheduler not in _COMFY_SCHEDULERS:
        c.unmapped["scheduler"] = str(scheduler)
    base = _COMFY_SAMPLERS.get(name) if isinstance(name, str) else None
    resolved = _resolve_sampler(base, karras) if base else None
    if resolved is None:
        c.unmapped["sampler_name"] = str(name)
        c.warnings.append(f"ComfyUI sampler {name!r} is not available; the default is used.")
    else:
        req["sampler"], schedule["karras"] = resolved

    for role, key in (("positive", "prompt"), ("negative", "negative_prompt")):
        text = c.text(inputs.get(role), role)
        if text is None:
            c.warnings.append(f"The {role} prompt could not be traced to a text node.")
        else:
            req[key] = text

    model = c.model(inputs.get("model"), schedule)
    if model is None:
        c.warnings.append("No checkpoint loader found; the default model is used.")
    else:
        req["model"] = model

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
    else:
        c.warnings.append(f"The latent input ({latent_kind}) is not understood; size defaulted.")
    if kind == "KSamplerAdvanced":
        for key, default in (("start_at_step", 0), ("add_noise", "enable")):
            value = c.scalar(inputs.get(key))
            if value is not None and value != default:
                c.unmapped[key] = str(value)
        end = c.scalar(inputs.get("end_at_step"))
        if isinstance(end, int) and end < req.get("steps", 10**9):
            c.unmapped["end_at_step"] = str(end)

    request = GenerationRequest(**req, schedule=ScheduleOptions(**schedule))
    return ReadResult(
        request=request,
        source="comfyui",
        unmapped=c.unmapped,
        warnings=c.warnings,
        image_seed=request.seed,
        model_name=model,
    )
