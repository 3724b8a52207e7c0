"""Everything that ties pkpi to Airflow, in one place; the DAG files in ``dags/`` only wire it.

==========================  =====================================================================
module                      what it holds
==========================  =====================================================================
:mod:`.names`               the names a deployment knows: DAG ids, owner, writer pool, the clock
:mod:`.params`              the DAGs' params, and what a run decides from them and its date
:mod:`.defaults`            every task's ``default_args``: retries (transient failures only),
                            timeout, and the failure callback that emails the engineers
:mod:`.tasks`               the body of every DAG task (one stage call each), and the settings
                            they start from (environment, then Airflow's ``smtp_default``)
:mod:`.smtp`                SMTP settings from Airflow's connection
:mod:`.assets`              the raw tables, the mart and its published copy as Assets
:mod:`.landing_sensor`      the deferrable sensor and trigger that wait for a return in landing/
:mod:`.dags_test`           ``airflow dags test`` for a person watching (``make demo``): a line
                            as each task starts and ends, Airflow's output in a log file
==========================  =====================================================================

The rest of ``pkpi`` never imports Airflow: the command line and the stage modules run without
it, and the DAGs call the same stage functions the command line does. These modules are
imported when the DAG processor parses ``dags/``, so none imports DuckDB, dbt or pandas at the
top: stage modules are imported inside the functions that run in a task.
"""
