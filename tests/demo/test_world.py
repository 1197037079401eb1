from __future__ import annotations

import random

import numpy as np
import pytest

from studio.demo import world


def test_same_seed_gives_same_scene_and_different_seeds_differ():
    a, b, c = world.make_scene(7), world.make_scene(7), world.make_scene(8)
    assert a.caption == b.caption
    assert a.layout == b.layout
    assert np.array_equal(a.rendering.image, b.rendering.image)
    assert not np.array_equal(a.rendering.image, c.rendering.image)


def test_object_pixels_have_the_listed_colour_and_background_elsewhere():
    for seed in range(40):
        scene = world.make_scene(seed)
        r = scene.rendering
        bg = world.PALETTE[scene.layout.background]
        assert (r.image[r.labels == 0] == bg).all()
        for i, obj in enumerate(scene.layout.objects):
            pixels = r.image[r.labels == i + 1]
            assert len(pixels) > 20, f"object {obj} is almost invisible in seed {seed}"
            assert (pixels == world.PALETTE[obj.colour]).all()


def test_caption_names_every_object_colour_and_shape():
    for seed in range(200):
        scene = world.make_scene(seed)
        for obj in scene.layout.objects:
            assert obj.colour in scene.caption
            noun = "stick figure" if obj.kind == world.FIGURE else obj.kind
            assert noun in scene.caption or (obj.kind == world.FIGURE and "person" in scene.caption)


def test_positions_match_object_centroids():
    for seed in range(100):
        scene = world.make_scene(seed)
        for i, obj in enumerate(scene.layout.objects):
            ys, xs = np.nonzero(scene.rendering.labels == i + 1)
            cx, cy = xs.mean() / 128, ys.mean() / 128
            ax, ay = world.ANCHORS[obj.position]
            assert abs(cx - ax) < 0.1 and abs(cy - ay) < 0.12, (seed, obj.position, cx, cy)


def test_depth_and_edge_maps_follow_the_label_map():
    scene = world.make_scene(3)
    r = scene.rendering
    assert (r.depth[r.labels == 0] == 0).all()
    assert (r.depth[r.labels > 0] > 100).all()
    boundary = np.zeros_like(r.labels, dtype=bool)
    boundary[:, 1:] |= r.labels[:, 1:] != r.labels[:, :-1]
    boundary[1:, :] |= r.labels[1:, :] != r.labels[:-1, :]
    assert ((r.edges == 255) == boundary).all()
    assert r.edges.max() == 255


def test_stick_figures_have_an_openpose_skeleton():
    figure_scenes = [
        s
        for s in (world.make_scene(seed) for seed in range(200))
        if any(o.kind == world.FIGURE for o in s.layout.objects)
    ]
    assert len(figure_scenes) > 10
    for s in figure_scenes[:10]:
        fig = next(o for o in s.layout.objects if o.kind == world.FIGURE)
        assert fig.pose in world.POSES and len(fig.keypoints) == 18
        # The neck keypoint lies on the drawn figure; the skeleton image is non-empty there.
        x, y = (round(v * 128) for v in fig.keypoints[1])
        assert s.rendering.pose[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].any()
    plain = world.render(world.single_object_layout("circle", "red", "blue"))
    assert not plain.pose.any()


def test_scene_renders_at_other_sizes():
    layout = world.sample_layout(random.Random(5))
    small, big = world.render(layout, 64), world.render(layout, 256)
    assert small.image.shape == (64, 64, 3) and big.image.shape == (256, 256, 3)
    with pytest.raises(ValueError, match="at least 16"):
        world.render(layout, 4)


def test_bad_attributes_raise_readable_errors():
    with pytest.raises(ValueError, match="must differ"):
        world.single_object_layout("circle", "red", "red")
    with pytest.raises(ValueError, match="expected one of"):
        world.single_object_layout("hexagon", "red", "blue")


def test_world_has_enough_variety():
    assert len(world.SHAPES) >= 5 and len(world.COLOURS) >= 8
    colours = np.array(list(world.PALETTE.values()), dtype=float)
    dists = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    assert dists[~np.eye(len(colours), dtype=bool)].min() > 75
    captions = {world.make_scene(s).caption for s in range(300)}
    assert len(captions) == 300
