"""crmcore's command line: ``crmcore demo``, ``db upgrade``, ``db copy``, ``import``, ``rfm``,
``segment``, ``customer show``, ``report``, ``dump`` and ``restore``.

Needs the ``[cli]`` extra (click and rich); nothing else in crmcore imports this package.

``cli`` is a :class:`click.Group` a host application can mount into its own command line::

    import click
    import crmcore.cli

    @click.group()
    def manage() -> None: ...

    manage.add_command(crmcore.cli.cli, name="crm")

A host that already holds a store (its own database connection, its own currency converter)
puts a :class:`CliConfig` in the click context object, and every command uses it instead of
opening ``--db``.
"""

from crmcore.cli._app import CliConfig, cli, main

__all__ = ["CliConfig", "cli", "main"]
