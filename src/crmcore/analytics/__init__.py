"""Columnar customer metrics, RFM scoring, segment maps, the rule language and lifecycle policy.

Analytics import only the domain and numpy; stores provide snapshots through the
:class:`MetricsSource` protocol (implemented by each adapter) and the services wire them.
"""

from crmcore.analytics._evaluate import Predicate, compile_predicate, evaluate
from crmcore.analytics._fields import FIELDS, FieldKind, FieldSpec
from crmcore.analytics._metrics import Categorical, CustomerMetrics, TagIndex
from crmcore.analytics._rfm import RFM_FIELDS, CutPoints, RfmPolicy, RfmResult, RfmScore, score_rfm
from crmcore.analytics._rules import (
    Ago,
    And,
    At,
    Between,
    Compare,
    F,
    FieldRef,
    HasTag,
    InList,
    IsNull,
    Match,
    Not,
    Or,
    Rule,
    ago,
    field,
    parse_rule,
    tag,
)
from crmcore.analytics._scores import ThresholdScale, Ties
from crmcore.analytics._segmap import DEFAULT_SEGMENT_MAP, SegmentMap, SegmentRule
from crmcore.analytics.ports import MetricsSource, RfmScorer, RuleSelector

__all__ = [
    "DEFAULT_SEGMENT_MAP",
    "FIELDS",
    "RFM_FIELDS",
    "Ago",
    "And",
    "At",
    "Between",
    "Categorical",
    "Compare",
    "CustomerMetrics",
    "CutPoints",
    "F",
    "FieldKind",
    "FieldRef",
    "FieldSpec",
    "HasTag",
    "InList",
    "IsNull",
    "Match",
    "MetricsSource",
    "Not",
    "Or",
    "Predicate",
    "RfmPolicy",
    "RfmResult",
    "RfmScore",
    "RfmScorer",
    "Rule",
    "RuleSelector",
    "SegmentMap",
    "SegmentRule",
    "TagIndex",
    "ThresholdScale",
    "Ties",
    "ago",
    "compile_predicate",
    "evaluate",
    "field",
    "parse_rule",
    "score_rfm",
    "tag",
]
