"""Testing support for crmcore and for applications that embed it.

* :mod:`crmcore.testing.strategies`: hypothesis strategies for every crmcore type.
* :mod:`crmcore.testing.contract`: the adapter contract suite (subclass it for your adapter).
* :mod:`crmcore.testing.pytest_plugin`: opt-in fixtures (``crm_memory_store``, ...).

Nothing is imported here eagerly: hypothesis and pytest load only when you use these modules.
"""
