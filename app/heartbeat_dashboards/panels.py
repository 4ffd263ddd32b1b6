"""The few panel shapes the dashboards use, with the project's defaults."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig as ThresholdsStyle,
)
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.statetimeline import Panel as StateTimelinePanel
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    VisibilityMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.dashboard import Panel as PanelModel

Panel = cogbuilder.Builder[PanelModel]
Query = cogbuilder.Builder[cogvariants.Dataquery]
# (value, colour) pairs; the first value is None (from minus infinity).
Steps = Sequence[tuple[float | None, str]]


def thresholds(steps: Steps) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def timeseries(
    title: str,
    description: str,
    datasource: DataSourceRef,
    targets: Sequence[Query],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    threshold_lines: Steps = (),
) -> TimeseriesPanel:
    panel = (
        TimeseriesPanel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if threshold_lines:
        panel = panel.thresholds(thresholds(threshold_lines)).thresholds_style(
            ThresholdsStyle().mode(GraphThresholdsStyleMode.DASHED)
        )
    return panel


def stat(
    title: str,
    description: str,
    datasource: DataSourceRef,
    targets: Sequence[Query],
    *,
    unit: str = "short",
    width: int = 6,
    height: int = 4,
    steps: Steps = ((None, "green"),),
    all_values: bool = False,
) -> StatPanel:
    reduce = ReduceDataOptions().calcs(["lastNotNull"]).values(all_values)
    return (
        StatPanel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .targets(list(targets))
        .unit(unit)
        .span(width)
        .height(height)
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.VALUE)
        .reduce_options(reduce)
        .thresholds(thresholds(steps))
    )


def table(
    title: str,
    description: str,
    datasource: DataSourceRef,
    targets: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    units: dict[str, str] | None = None,
) -> TablePanel:
    """A table; `units` maps column names to the unit their values are shown in."""
    panel = (
        TablePanel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .targets(list(targets))
        .span(width)
        .height(height)
    )
    for column, unit in sorted((units or {}).items()):
        panel = panel.override_by_name(column, [DynamicConfigValue(id_val="unit", value=unit)])
    return panel


def state_timeline(
    title: str,
    description: str,
    datasource: DataSourceRef,
    targets: Sequence[Query],
    *,
    states: dict[int, tuple[str, str]],
    width: int = 12,
    height: int = 8,
) -> StateTimelinePanel:
    """One band per series; `states` maps each value to the (text, colour) it is shown as."""
    mapping = ValueMap(
        {
            str(value): ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(sorted(states.items()))
        }
    )
    return (
        StateTimelinePanel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .targets(list(targets))
        .span(width)
        .height(height)
        .show_value(VisibilityMode.NEVER)
        .merge_values(True)
        .mappings([mapping])
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
