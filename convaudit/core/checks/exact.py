"""Which input sizes make every division exact and every merge match, found in one pass over the layers.

Where every rounding upstream is exact, each spatial size is affine in the input size x: size = a·x + c, with a and
c Fractions. A window layer (K' = D·(K − 1) + 1, padding P, stride S) is exact where (size − K' + 2P)/S is an
integer, and its output (size − K' + 2P)/S + 1 is affine again; a transposed convolution gives S·size + offset, up-
sampling by 2 gives 2·size, pixel unshuffle size/r (which must be whole), a pad size + before + after, a crop its
second input's size (the first must be at least as large). Each "is an integer" is a congruence on x, each "fits"
a bound, and a merge of branches whose forms differ holds only where they are equal: an affine equation, with one
solution or none. The exact inputs are then one residue class between two bounds (or a single input), and each
pinned `in:` is a product of affine sizes: checking a size costs a few multiplications, not an analysis.

Layers after the point where the analysis stopped (a merge of mismatched sizes) are read at a stand-in input: one
of the inputs the model still allows, where everything upstream is exact and every merge so far matches, so the
layer computes as it would there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction

from convaudit.core.analysis import LayerResult, Report, apply_layer
from convaudit.core.layers import REGISTRY, LayerProblem, Outcome, Shape
from convaudit.core.layers.base import LEADING, trait_of
from convaudit.core.model import INPUT, LayerSpec
from convaudit.core.windows import format_fraction

STAND_IN = 2**20  # the least stand-in input: large enough that every kernel fits
ROUND = 720_720  # a round stand-in size: divisible by every factor up to 16 (pixel unshuffle)


@dataclass(frozen=True)
class Affine:
    """slope·x + offset: a size as a function of the input size x."""

    slope: Fraction
    offset: Fraction

    def at(self, x: int) -> Fraction:
        return self.slope * x + self.offset

    def __add__(self, other: Affine | int | Fraction) -> Affine:
        if isinstance(other, Affine):
            return Affine(self.slope + other.slope, self.offset + other.offset)
        return Affine(self.slope, self.offset + other)

    def __sub__(self, other: Affine | int | Fraction) -> Affine:
        return self + (other * -1 if isinstance(other, Affine) else -other)

    def __mul__(self, factor: int | Fraction) -> Affine:
        return Affine(self.slope * factor, self.offset * factor)

    def __truediv__(self, divisor: int | Fraction) -> Affine:
        return Affine(self.slope / divisor, self.offset / divisor)

    def text(self, name: str = "x") -> str:
        """'x/8 − 15.5', '2·x + 1', '7'."""
        if self.slope == 0:
            return format_fraction(self.offset)
        slope = self.slope
        term = name if slope == 1 else (f"{name}/{slope.denominator}" if slope.numerator == 1 else
                                        f"{format_fraction(slope)}·{name}")
        if self.offset == 0:
            return term
        return f"{term} {'+' if self.offset > 0 else '−'} {format_fraction(abs(self.offset))}"


def constant(value: int | Fraction) -> Affine:
    return Affine(Fraction(0), Fraction(value))


X = Affine(Fraction(1), Fraction(0))


@dataclass(frozen=True)
class Inputs:
    """The input sizes x ≡ residue (mod modulus) with lowest ≤ x ≤ highest; modulus 0: x = residue alone."""

    residue: int = 0
    modulus: int = 1
    lowest: int = 1
    highest: int | None = None

    def __contains__(self, x: int) -> bool:
        if x < self.lowest or (self.highest is not None and x > self.highest):
            return False
        return x == self.residue if self.modulus == 0 else (x - self.residue) % self.modulus == 0

    def first_from(self, x: int) -> int | None:
        """The least member ≥ x."""
        x = max(x, self.lowest)
        if self.modulus == 0:
            found = self.residue if self.residue >= x else None
        else:
            found = x + (self.residue - x) % self.modulus
        return found if found is not None and (self.highest is None or found <= self.highest) else None

    def last_to(self, x: int) -> int | None:
        """The greatest member ≤ x."""
        if self.highest is not None:
            x = min(x, self.highest)
        if self.modulus == 0:
            found = self.residue if self.residue <= x else None
        else:
            found = x - (x - self.residue) % self.modulus
        return found if found is not None and found >= self.lowest else None

    def stand_in(self, least: int) -> int | None:
        """A member to compute layers at: the greatest one if bounded above (where every kernel fits best), else
        the first from `least` on."""
        return self.last_to(self.highest) if self.highest is not None else self.first_from(least)

    def _checked(self) -> Inputs | None:
        return self if self.first_from(self.lowest) is not None else None

    def integral(self, form: Affine) -> Inputs | None:
        """The members where form(x) is an integer (None if there are none)."""
        if self.modulus == 0:
            return self if form.at(self.residue).denominator == 1 else None
        # x = r + M·t: form = w + u·t with u = slope·M, w = form(r). With L the least common denominator,
        # L·u·t ≡ −L·w (mod L): solvable when g = gcd(L·u, L) divides L·w; then t ≡ t0 (mod L/g).
        u, w = form.slope * self.modulus, form.at(self.residue)
        scale = math.lcm(u.denominator, w.denominator)
        a, b = int(u * scale), int(-w * scale)
        g = math.gcd(a, scale)
        if b % g:
            return None
        step = scale // g
        t0 = (b // g * pow(a // g, -1, step)) % step if step > 1 else 0
        modulus = self.modulus * step
        return replace(self, residue=(self.residue + self.modulus * t0) % modulus, modulus=modulus)._checked()

    def at_least(self, form: Affine, bound: int | Fraction) -> Inputs | None:
        """The members where form(x) ≥ bound."""
        if form.slope == 0:
            return self if form.offset >= bound else None
        limit = (bound - form.offset) / form.slope
        if form.slope > 0:
            return replace(self, lowest=max(self.lowest, math.ceil(limit)))._checked()
        highest = math.floor(limit) if self.highest is None else min(self.highest, math.floor(limit))
        return replace(self, highest=highest)._checked()

    def equal(self, first: Affine, second: Affine) -> Inputs | None:
        """The members where the two forms agree: all (equal forms), one, or none."""
        difference = first - second
        if difference.slope == 0:
            return self if difference.offset == 0 else None
        x = -difference.offset / difference.slope
        if x.denominator != 1 or int(x) not in self:
            return None
        return Inputs(int(x), 0, int(x), int(x))


@dataclass(frozen=True)
class MapForm:
    """A feature map: its channels, and each spatial size as a form."""

    channels: int
    sizes: tuple[Affine, ...]

    def shape_at(self, x: int) -> Shape:
        return (self.channels, *(int(size.at(x)) for size in self.sizes))


@dataclass(frozen=True)
class VectorForm:
    """A vector whose length is the product of the factors (a flattened map: C·H·W)."""

    factors: tuple[Affine, ...]

    def shape_at(self, x: int) -> Shape:
        return (int(math.prod(factor.at(x) for factor in self.factors)),)

    @property
    def fixed(self) -> bool:
        return all(factor.slope == 0 for factor in self.factors)


Form = MapForm | VectorForm


@dataclass(frozen=True)
class Never:
    """Why no input size works: the layer, and what fails there."""

    layer: str
    reason: str
    merge: bool = False  # branches that never agree


class Unmodelled(Exception):
    """A layer the one-pass model cannot express (ceil rounding, reshaping layers, …): try sizes instead."""


class ExactModel:
    """The input sizes where every division is exact and every merge matches, and each pin as a product of forms."""

    def __init__(self, inputs: Inputs | None, pins: list[tuple[int, tuple[Affine, ...]]],
                 forms: dict[str, Form], never: Never | None = None):
        self.inputs = inputs
        self.pins = pins  # (pinned in:, factors whose product is what the layer receives)
        self.forms = forms  # each layer's output, as far as the model reached
        self.never = never

    @classmethod
    def of(cls, report: Report, axes: tuple[int, ...]) -> ExactModel | None:
        """The model for the spatial axes `axes` searched together (the others keep their size); None where it does
        not apply (ceil rounding, reshaping layers, up-sampling by a factor that is no binary fraction …)."""
        try:
            return _Builder(report, axes).run()
        except Unmodelled:
            return None

    def verdict(self, x: int) -> bool | None:
        """None if some layer is inexact, has no output or cannot merge at input x; else whether every pin matches."""
        if self.inputs is None or x not in self.inputs:
            return None
        for pinned, factors in self.pins:
            if math.prod(factor.at(x) for factor in factors) != pinned:
                return False
        return True


class _Builder:
    def __init__(self, report: Report, axes: tuple[int, ...]):
        self.report = report
        self.spec = report.spec
        spatial = self.spec.input[1:]
        self.least = max(STAND_IN, 4 * max(spatial))
        self.inputs = Inputs()
        self.forms: dict[str, Form] = {
            INPUT: MapForm(self.spec.input[0], tuple(X if i in axes else constant(size)
                                                     for i, size in enumerate(spatial)))}
        self.pins: list[tuple[int, tuple[Affine, ...]]] = []
        # Axes not searched keep what the analysis computes there (floors included) and constrain nothing: each
        # spatial axis's sizes follow from that axis alone, so the other axes are searched on their own.
        self.free = {index for index in range(len(spatial)) if index not in axes}

    def run(self) -> ExactModel:
        for layer in self.spec.layers:
            try:
                self.step(layer)
            except _Stop as stop:
                return ExactModel(None, [], self.forms, stop.never)
        return ExactModel(self.inputs, self.pins, self.forms)

    def narrow(self, inputs: Inputs | None, layer: LayerSpec, reason: str | Callable[[], str],
               merge: bool = False) -> None:
        """Keep only the inputs where a condition holds; stop if none is left (and say why)."""
        if inputs is None:
            raise _Stop(Never(layer.name, reason if isinstance(reason, str) else reason(), merge))
        self.inputs = inputs

    def compute(self, layer: LayerSpec, sources: list[Form]) -> tuple[list[Shape], Outcome]:
        """The layer computed: as the analysis did, or (past where it stopped) at a stand-in input. Raises the
        layer's LayerProblem where it fails at every input the model allows."""
        analysed: LayerResult | None = self.report.by_name.get(layer.name)
        if analysed is not None:
            return list(analysed.input_shapes), analysed.outcome
        problem: LayerProblem | None = None
        for inputs in (self.inputs, self._round(sources)):  # a round stand-in divides by any small factor
            x = inputs.stand_in(self.least) if inputs is not None else None
            if x is None:
                continue
            shapes = [source.shape_at(x) for source in sources]
            try:
                return shapes, apply_layer(layer, tuple(shapes), (LEADING,) * len(shapes))
            except LayerProblem as failed:
                problem = failed
        if problem is None:
            raise Unmodelled
        # It fails at the largest inputs the model allows and at a round one, where every kernel fits and every
        # small factor divides: what fails there is on a fixed axis, the channels or the ranks, so it fails at
        # every input the model allows.
        raise problem

    def _round(self, sources: list[Form]) -> Inputs | None:
        inputs = self.inputs
        for source in sources:
            for size in source.sizes if isinstance(source, MapForm) else ():
                inputs = inputs.integral(size / ROUND) or inputs
        return inputs

    def step(self, layer: LayerSpec) -> None:
        sources = [self.forms[name] for name in layer.inputs]
        rule = trait_of(REGISTRY[layer.type], "size_rule", layer.params)
        if rule in ("pointwise", "concat") and len(sources) > 1:
            self.merge(layer, sources)
            return
        if REGISTRY[layer.type].crops_to_second:
            self.crop(layer, sources)
        try:
            shapes, outcome = self.compute(layer, sources)
        except LayerProblem as problem:
            raise _Stop(Never(layer.name, problem.message)) from None
        first = sources[0]
        self.pin(layer, first)
        rank = len(outcome.shape)
        if rule == "window" and isinstance(first, MapForm):
            self.forms[layer.name] = self.window(layer, first, outcome)
        elif rule == "resize" and isinstance(first, MapForm):
            self.forms[layer.name] = self.resize(layer, sources, outcome)
        elif rule == "pointwise" and (isinstance(first, VectorForm) or rank == 1 + len(first.sizes)):
            self.forms[layer.name] = first
        elif rule == "fixed" and rank > 1:
            self.forms[layer.name] = MapForm(outcome.shape[0], tuple(constant(s) for s in outcome.shape[1:]))
        elif rule == "vector" and rank == 1:
            self.forms[layer.name] = VectorForm((constant(outcome.shape[0]),))
        elif rule == "flatten" and rank == 1:
            self.forms[layer.name] = VectorForm(_factors(first))
        else:
            raise Unmodelled

    def pin(self, layer: LayerSpec, first: Form) -> None:
        """A pinned `in:` (linear and rbf): what the layer receives, as factors."""
        pinned = layer.params.get("in")
        if pinned is None:
            return
        if isinstance(first, MapForm) and not layer.params.get("flatten", True):
            self.pins.append((pinned, (first.sizes[-1],)))  # nn.Linear on the last dimension
        else:
            self.pins.append((pinned, _factors(first)))

    def window(self, layer: LayerSpec, first: MapForm, outcome: Outcome) -> MapForm:
        sizes = []
        for index, (size, window) in enumerate(zip(first.sizes, outcome.windows, strict=True)):
            if index in self.free:
                sizes.append(constant(window.out))
                continue
            if window.ceil:
                raise Unmodelled  # rounding up is not affine
            span = size - window.effective_kernel + 2 * window.padding  # S·(out − 1) where exact
            self.narrow(self.inputs.at_least(span, 0), layer, f"{window.axis}: the kernel never fits")
            self.narrow(self.inputs.integral(span / window.stride), layer,
                        f"{window.axis}: size − {window.effective_kernel} + 2·{window.padding} is never divisible by "
                        f"{window.stride}")
            sizes.append(span / window.stride + 1)
        return MapForm(outcome.shape[0], tuple(sizes))

    def crop(self, layer: LayerSpec, sources: list[Form]) -> None:
        """A resize with a second input crops the first to its size: the first must be at least as large."""
        first, target = sources
        if not (isinstance(first, MapForm) and isinstance(target, MapForm)) or len(first.sizes) != len(target.sizes):
            raise Unmodelled
        for index, (size, wanted) in enumerate(zip(first.sizes, target.sizes, strict=True)):
            if index in self.free:
                continue
            self.narrow(self.inputs.at_least(size - wanted, 0), layer,
                        f"'{layer.inputs[0]}' is never as large as '{layer.inputs[1]}'")

    def resize(self, layer: LayerSpec, sources: list[Form], outcome: Outcome) -> MapForm:
        first = sources[0]
        assert isinstance(first, MapForm)
        sizes = []
        for index, (size, resize) in enumerate(zip(first.sizes, outcome.resizes, strict=True)):
            if index in self.free:
                sizes.append(constant(resize.out))
            elif len(sources) == 2:
                if resize.kind != "fixed":
                    raise Unmodelled
                target = sources[1]
                assert isinstance(target, MapForm)
                sizes.append(target.sizes[index])
            elif resize.kind == "fixed":  # up-sampling to a size
                sizes.append(constant(resize.out))
            elif resize.kind == "scale" and resize.scale.denominator & (resize.scale.denominator - 1):
                raise Unmodelled  # PyTorch multiplies in floating point: exact for binary fractions only
            else:
                out = size * resize.scale + resize.offset  # S·in + offset, r·in, in/r, in + before + after
                self.narrow(self.inputs.integral(out), layer, f"{resize.axis}: size × {resize.scale} is never whole")
                self.narrow(self.inputs.at_least(out, 1), layer, f"{resize.axis}: no output at any input")
                sizes.append(out)
        return MapForm(outcome.shape[0], tuple(sizes))

    def merge(self, layer: LayerSpec, sources: list[Form]) -> None:
        """Branches joined: each spatial size must agree where every division is exact (an equation in x with
        one solution or none, unless the forms are equal); a broadcasting product lets a size-1 axis through."""
        if any(isinstance(source, VectorForm) for source in sources):
            if not all(isinstance(source, VectorForm) and source.fixed for source in sources):
                raise Unmodelled
            _, outcome = self.compute(layer, sources)
            self.forms[layer.name] = VectorForm((constant(outcome.shape[0]),))
            return
        maps = [source for source in sources if isinstance(source, MapForm)]
        if len({len(source.sizes) for source in maps}) > 1:
            raise _Stop(Never(layer.name, "its inputs have different numbers of spatial axes"))
        one = constant(1)
        for broadcast in (True, False):  # let size-1 axes broadcast first; if the layer refuses, require them equal
            for axis in range(len(maps[0].sizes)):
                if axis in self.free:  # sizes fixed whatever the searched axes are: they differ at every input
                    wide = [(name, source.sizes[axis]) for name, source in zip(layer.inputs, maps, strict=True)
                            if source.sizes[axis] != one]
                    other = next((each for each in wide if each[1] != wide[0][1]), None)
                    if other is not None:
                        raise _Stop(Never(layer.name, f"'{wide[0][0]}' gives {wide[0][1].text()} and '{other[0]}' "
                                                      f"{other[1].text()} on an axis not searched", True))
                    continue
                forms = [(name, source.sizes[axis]) for name, source in zip(layer.inputs, maps, strict=True)
                         if not (broadcast and source.sizes[axis] == one)]
                for name, form in forms[1:]:
                    self.narrow(self.inputs.equal(forms[0][1], form), layer,
                                lambda first=forms[0], name=name, form=form: disagreement(*first, name, form), True)
            try:
                _, outcome = self.compute(layer, sources)
            except LayerProblem as problem:
                if broadcast:
                    continue
                raise _Stop(Never(layer.name, problem.message)) from None
            sizes = tuple(next((f for f in (source.sizes[axis] for source in maps) if f != one), one)
                          for axis in range(len(maps[0].sizes)))
            self.forms[layer.name] = MapForm(outcome.shape[0], sizes)
            return


class _Stop(Exception):
    def __init__(self, never: Never):
        self.never = never


def disagreement(first: str, first_form: Affine, second: str, second_form: Affine) -> str:
    """How two branches' sizes differ wherever every division is exact: always by the same amount, or equal at one
    input size only (x the searched input size)."""
    gap = second_form - first_form
    forms = f"{second_form.text()} against {first_form.text()} at input x, wherever every division is exact"
    if gap.slope == 0:
        word = "smaller" if gap.offset < 0 else "larger"
        return f"'{second}' is always {format_fraction(abs(gap.offset))} {word} than '{first}' ({forms})"
    meet = -gap.offset / gap.slope
    where = f"only at x = {format_fraction(meet)}" if meet > 0 else "at no input size"
    return f"'{second}' and '{first}' agree {where} ({forms})"


def _factors(form: Form) -> tuple[Affine, ...]:
    if isinstance(form, VectorForm):
        return form.factors
    return (constant(form.channels), *form.sizes)


def searched_groups(spatial: Iterable[int]) -> list[tuple[int, ...]]:
    """Spatial axes searched together: those of equal size (a square image's H and W), each other one alone."""
    groups: dict[int, list[int]] = {}
    for index, size in enumerate(spatial):
        groups.setdefault(size, []).append(index)
    return sorted((tuple(axes) for axes in groups.values()), key=lambda axes: axes[0])
