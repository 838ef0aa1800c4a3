"""The eventsourcing library's own recorder test cases, run against sheratan.store.

The library's base cases are reached through their modules: pytest collects every
unittest.TestCase it finds in this module's namespace, and the bases are abstract.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests import application as library_app_cases
from eventsourcing.tests import persistence as library_cases
from eventsourcing.utils import Environment

from sheratan.store import (
    Factory,
    JsonlAggregateRecorder,
    JsonlApplicationRecorder,
    JsonlProcessRecorder,
    JsonlTrackingRecorder,
)
from sheratan.store.factory import open_ledger


class FreshHome:
    """Each test gets its own home folder, removed afterwards."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.home = Path(self._tmp.name)
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self._tmp.cleanup()


class TestAggregateRecorder(FreshHome, library_cases.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return JsonlAggregateRecorder(open_ledger(self.home, "events"))


class TestApplicationRecorder(FreshHome, library_cases.ApplicationRecorderTestCase):
    def create_recorder(self) -> ApplicationRecorder:
        return JsonlApplicationRecorder(open_ledger(self.home, "events"))

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestTrackingRecorder(FreshHome, library_cases.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return JsonlTrackingRecorder(open_ledger(self.home, "views"))


class TestProcessRecorder(FreshHome, library_cases.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return JsonlProcessRecorder(open_ledger(self.home, "events"))


class TestNonInterleavingNotificationIDs(
    FreshHome, library_cases.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return JsonlApplicationRecorder(open_ledger(self.home, "events"))


class TrackingRecorderSubclass(JsonlTrackingRecorder):
    pass


class TestInfrastructureFactory(FreshHome, library_cases.InfrastructureFactoryTestCase[Factory]):
    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self._tmp = tempfile.TemporaryDirectory()
        self.env[Factory.PERSISTENCE_MODULE] = "sheratan.store"
        self.env[Factory.SHERATAN_HOME] = self._tmp.name
        library_cases.InfrastructureFactoryTestCase.setUp(self)

    def tearDown(self) -> None:
        library_cases.InfrastructureFactoryTestCase.tearDown(self)
        self._tmp.cleanup()

    def expected_factory_class(self) -> type[Factory]:
        return Factory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return JsonlAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return JsonlApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return JsonlTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return JsonlProcessRecorder


class TestExampleApplication(library_app_cases.ExampleApplicationTestCase):
    expected_factory_topic = "sheratan.store.factory:Factory"

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self._saved = {k: os.environ.get(k) for k in ("PERSISTENCE_MODULE", "SHERATAN_HOME")}
        os.environ["PERSISTENCE_MODULE"] = "sheratan.store"
        os.environ["SHERATAN_HOME"] = self._tmp.name

    def tearDown(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._tmp.cleanup()
