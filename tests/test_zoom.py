"""hseg/zoom.py: the square around the predicted body, computed by hand; the second pass sees that
square magnified, and its logits land back where they came from (checked on linear ramps, which
bilinear sampling reproduces exactly)."""
import pytest
import torch

from hseg.zoom import BodyZoom, body_squares

S = 32


def centre(pixel: float) -> float:
    """grid_sample's coordinate (-1..1 across the image) of a pixel position."""
    return 2 * pixel / S - 1


def test_body_squares_by_hand():
    body = torch.zeros(4, S, S, dtype=torch.bool)
    body[0, 8:16, 4:8] = True       # 8 rows x 4 columns: side 8 px x 1.2 -> half 0.3, a 3.3x zoom, capped at 2x
    body[1, 8:24, 8:24] = True      # 16 px x 1.2 -> half 0.6: a 1.67x zoom
    body[2] = True                  # the whole image: no zoom
    squares, zoomed = body_squares(body)
    # image 0: centre (6, 12) px -> (-0.625, -0.25); the 2x cap makes the half side 0.5, and the square
    # moves right to lie inside the image (centre x at least -1 + 0.5)
    assert squares[0].tolist() == pytest.approx([-0.5, -0.25, 0.5])
    assert squares[1].tolist() == pytest.approx([centre(16), centre(16), 0.6])
    assert zoomed.tolist() == [True, True, False, False]     # image 3 has no body


class RampModel(torch.nn.Module):
    """Pointwise logits: background (class 0) wins where input channel 2 is 0, class 1 where it is 1;
    classes 2 and 3 are a tenth of the x and y ramps of channels 0 and 1. Records each input."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        zeros = torch.zeros_like(x[:, :1])
        body = x[:, 2:3]
        return torch.cat([1 - 2 * body, 2 * body, x[:, :1] / 10, x[:, 1:2] / 10, zeros, zeros, zeros], 1)


def ramp_images(boxes):
    ramp = (torch.arange(S, dtype=torch.float32) + 0.5).apply_(centre)
    x = torch.zeros(len(boxes), 3, S, S)
    x[:, 0] = ramp.view(1, S)
    x[:, 1] = ramp.view(S, 1)
    for i, box in enumerate(boxes):
        if box:
            (y0, y1), (x0, x1) = box
            x[i, 2, y0:y1, x0:x1] = 1
    return x


def test_the_second_pass_sees_the_square_and_its_logits_land_where_they_came_from(tree):
    model = RampModel()
    x = ramp_images([((10, 20), (16, 24)), None])     # a 10 x 8 px body off the centre; no body
    out = BodyZoom(model, tree, "flat")(x)
    first, view = model.inputs
    assert len(view) == 1                              # only the image with a body is zoomed
    # the square: centre (20, 15) px, half side 10 / 32 * 2 / 2 * 1.2 = 0.375 -> a 2.67x zoom, capped at 2x
    cx, cy, half = centre(20), centre(15), 0.5
    v = (torch.arange(S) + 0.5).apply_(centre)                  # the view's own pixel centres
    assert torch.allclose(view[0, 0], (cx + half * v).view(1, S).expand(S, S), atol=1e-5)
    assert torch.allclose(view[0, 1], (cy + half * v).view(S, 1).expand(S, S), atol=1e-5)
    expected = model(x)
    # the ramps come back to the same place: in the square's interior the average of two equal values;
    # outside the square the first pass alone, bit for bit (the square spans pixels 12..28 x 7..23)
    assert torch.allclose(out[0, 2:4, 8:22, 13:27], expected[0, 2:4, 8:22, 13:27], atol=1e-5)
    outside = torch.ones(S, S, dtype=torch.bool)
    outside[7:23, 12:28] = False
    assert torch.equal(out[0][:, outside], expected[0][:, outside])
    assert torch.equal(out[1], expected[1])                      # no body: untouched
    # inside the square the logits changed where the magnified view differs (the body's blurred edge)
    assert not torch.equal(out[0, :2, 7:23, 12:28], expected[0, :2, 7:23, 12:28])


def test_without_any_body_the_model_runs_once_and_its_logits_are_returned(tree):
    model = RampModel()
    x = ramp_images([None, None])
    assert torch.equal(BodyZoom(model, tree, "flat")(x), model(x)) and len(model.inputs) == 2
