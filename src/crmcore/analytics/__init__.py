"""Columnar customer metrics, RFM scoring, segment maps, the rule language, the lifecycle
policy, churn risk, historical value, engagement, and the fitted BG/NBD and Gamma-Gamma models.

Analytics import only the domain and numpy; stores provide snapshots through the
:class:`MetricsSource` protocol (implemented by each adapter) and the services wire them.
"""

from crmcore.analytics._bgnbd import BgNbdModel, bgnbd_log_likelihood, fit_bgnbd
from crmcore.analytics._evaluate import Predicate, compile_predicate, evaluate
from crmcore.analytics._fields import FIELDS, FieldKind, FieldSpec
from crmcore.analytics._gammagamma import GammaGammaModel, fit_gamma_gamma
from crmcore.analytics._lifecycle import LIFECYCLE_FIELDS, LifecyclePolicy
from crmcore.analytics._metrics import Categorical, CustomerMetrics, TagIndex
from crmcore.analytics._paretonbd import ParetoNbdModel, fit_pareto_nbd
from crmcore.analytics._parse import parse_rule
from crmcore.analytics._periods import Period, RepeatSummary, summarise_purchases
from crmcore.analytics._rfm import RFM_FIELDS, CutPoints, RfmPolicy, RfmResult, RfmScore, score_rfm
from crmcore.analytics._rules import (
    MAX_RULE_DEPTH,
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
    tag,
)
from crmcore.analytics._scores import ThresholdScale, Ties
from crmcore.analytics._segmap import DEFAULT_SEGMENT_MAP, SegmentMap, SegmentRule
from crmcore.analytics._value import (
    VALUE_FIELDS,
    BgNbdParameters,
    churn_risk,
    engagement,
    historical_value,
    probability_alive,
)
from crmcore.analytics.ports import MetricsSource, RfmScorer, RuleSelector, SavedRules

__all__ = [
    "DEFAULT_SEGMENT_MAP",
    "FIELDS",
    "LIFECYCLE_FIELDS",
    "MAX_RULE_DEPTH",
    "RFM_FIELDS",
    "VALUE_FIELDS",
    "Ago",
    "And",
    "At",
    "Between",
    "BgNbdModel",
    "BgNbdParameters",
    "Categorical",
    "Compare",
    "CustomerMetrics",
    "CutPoints",
    "F",
    "FieldKind",
    "FieldRef",
    "FieldSpec",
    "GammaGammaModel",
    "HasTag",
    "InList",
    "IsNull",
    "LifecyclePolicy",
    "Match",
    "MetricsSource",
    "Not",
    "Or",
    "ParetoNbdModel",
    "Period",
    "Predicate",
    "RepeatSummary",
    "RfmPolicy",
    "RfmResult",
    "RfmScore",
    "RfmScorer",
    "Rule",
    "RuleSelector",
    "SavedRules",
    "SegmentMap",
    "SegmentRule",
    "TagIndex",
    "ThresholdScale",
    "Ties",
    "ago",
    "bgnbd_log_likelihood",
    "churn_risk",
    "compile_predicate",
    "engagement",
    "evaluate",
    "field",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_pareto_nbd",
    "historical_value",
    "parse_rule",
    "probability_alive",
    "score_rfm",
    "summarise_purchases",
    "tag",
]
